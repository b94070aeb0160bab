//! Figures and how they are printed.

/// One measured figure.
#[derive(Debug, Clone)]
pub(crate) struct Figure {
    pub(crate) scenario: &'static str,
    pub(crate) metric: String,
    pub(crate) value: f64,
    pub(crate) unit: &'static str,
    /// What it was compared with in the same run, and that figure.
    pub(crate) anchor: Option<(String, f64)>,
}

impl Figure {
    pub(crate) fn new(
        scenario: &'static str,
        metric: impl Into<String>,
        value: f64,
        unit: &'static str,
    ) -> Self {
        Self { scenario, metric: metric.into(), value, unit, anchor: None }
    }
}

/// Print figures as a table, or as one JSON object per line.
pub(crate) fn print(figures: &[Figure], json: bool) {
    if json {
        for f in figures {
            let mut line = format!(
                "{{\"scenario\":{},\"metric\":{},\"value\":{},\"unit\":{}",
                quoted(f.scenario),
                quoted(&f.metric),
                number(f.value),
                quoted(f.unit)
            );
            if let Some((name, v)) = &f.anchor {
                let ratio = if *v == 0.0 { "null".to_owned() } else { number(f.value / v) };
                line += &format!(
                    ",\"anchor\":{},\"anchor_value\":{},\"ratio\":{ratio}",
                    quoted(name),
                    number(*v)
                );
            }
            println!("{line}}}");
        }
        return;
    }
    println!("{:<10} {:<26} {:>14} {:<11} vs anchor", "scenario", "metric", "value", "unit");
    for f in figures {
        let vs = f.anchor.as_ref().map_or(String::new(), |(name, v)| {
            if *v == 0.0 {
                format!("{name}: 0")
            } else {
                format!("{:.2}× {name} ({})", f.value / v, short(*v))
            }
        });
        println!("{:<10} {:<26} {:>14} {:<11} {vs}", f.scenario, f.metric, short(f.value), f.unit);
    }
}

/// One line of [`print()`]'s JSON read back into a figure (how a child process hands over its
/// figures). `ratio` is not read: it follows from the value and the anchor. The scenario and
/// unit are leaked to fit `Figure`'s `&'static str`: a few short strings per child, once.
pub(crate) fn parse_json(line: &str) -> Result<Figure, String> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not a figure ({e}): {line}"))?;
    let text = |key: &str| {
        v.get(key).and_then(serde_json::Value::as_str).ok_or(format!("no {key} in {line}"))
    };
    // The printer writes a non-finite number as null.
    let number = |key: &str| match v.get(key) {
        Some(serde_json::Value::Null) => Ok(f64::NAN),
        Some(x) => x.as_f64().ok_or(format!("{key} is not a number in {line}")),
        None => Err(format!("no {key} in {line}")),
    };
    let leak = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
    let anchor = match v.get("anchor") {
        Some(_) => Some((text("anchor")?.to_owned(), number("anchor_value")?)),
        None => None,
    };
    Ok(Figure {
        anchor,
        ..Figure::new(
            leak(text("scenario")?),
            text("metric")?,
            number("value")?,
            leak(text("unit")?),
        )
    })
}

/// A JSON string literal (names may hold quotes or backslashes).
fn quoted(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

fn number(v: f64) -> String {
    if v.is_finite() { format!("{v:.4}") } else { "null".to_owned() }
}

fn short(v: f64) -> String {
    if v.abs() >= 100.0 { format!("{v:.0}") } else { format!("{v:.3}") }
}
