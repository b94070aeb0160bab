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
                "{{\"scenario\":\"{}\",\"metric\":\"{}\",\"value\":{},\"unit\":\"{}\"",
                f.scenario,
                f.metric,
                number(f.value),
                f.unit
            );
            if let Some((name, v)) = &f.anchor {
                let ratio = if *v == 0.0 { "null".to_owned() } else { number(f.value / v) };
                line += &format!(
                    ",\"anchor\":\"{name}\",\"anchor_value\":{},\"ratio\":{ratio}",
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

fn number(v: f64) -> String {
    if v.is_finite() { format!("{v:.4}") } else { "null".to_owned() }
}

fn short(v: f64) -> String {
    if v.abs() >= 100.0 { format!("{v:.0}") } else { format!("{v:.3}") }
}
