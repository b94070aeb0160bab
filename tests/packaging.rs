//! The C library as a user installs it. `make install` into a scratch prefix lays out the
//! header, the archive, the shared library with its SONAME and links (stripped, its debug
//! info split off and linked back), and hearsay.pc; a staged install (`DESTDIR`) lands under
//! the stage with the final prefix in hearsay.pc. The README's C example, compiled with
//! pkg-config's flags, runs against the installed shared library, the installed archive,
//! and this checkout's `target/pkgconfig/hearsay.pc` (`make pkgconfig`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hearsay-packaging-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    })
}

/// Run `cmd`; its stdout, or a panic with everything it said. A missing tool fails loudly.
fn run(cmd: &mut Command) -> String {
    let what = format!("{cmd:?}");
    let out: Output = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn make(args: &[&str]) -> String {
    // `CARGO` is inherited, so make builds with this very toolchain.
    run(Command::new("make").arg("--no-print-directory").args(args).current_dir(root()))
}

/// `make install PREFIX=<scratch>/prefix`, once for all tests.
fn prefix() -> &'static Path {
    static PREFIX: OnceLock<PathBuf> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let prefix = scratch().join("prefix");
        make(&["install", &format!("PREFIX={}", prefix.display())]);
        prefix
    })
}

/// The SONAME the ABI version gives: `libhearsay.so.<major>` from 1.0, `.so.0.<minor>` before.
fn soname() -> String {
    match env!("CARGO_PKG_VERSION_MAJOR") {
        "0" => format!("libhearsay.so.0.{}", env!("CARGO_PKG_VERSION_MINOR")),
        major => format!("libhearsay.so.{major}"),
    }
}

fn real_name() -> String {
    format!("libhearsay.so.{}", env!("CARGO_PKG_VERSION"))
}

fn pkg_config(pc_dir: &Path, args: &[&str]) -> Vec<String> {
    let out =
        run(Command::new("pkg-config").args(args).arg("hearsay").env("PKG_CONFIG_PATH", pc_dir));
    out.split_whitespace().map(str::to_owned).collect()
}

/// The README's C example, verbatim: the fenced block that opens with `/* dedup.c`.
fn readme_example() -> PathBuf {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let code = readme
        .split("```c\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .find(|block| block.starts_with("/* dedup.c"))
        .expect("the README has a ```c block starting with /* dedup.c");
    let path = scratch().join("dedup.c");
    std::fs::write(&path, code).expect("write dedup.c");
    path
}

/// Compile the example with `flags`, run it in a fresh directory, and check what it says.
fn build_and_run(name: &str, flags: &[String]) -> PathBuf {
    let exe = scratch().join(name);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    run(Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(readme_example())
        .args(flags));
    let cwd = scratch().join(format!("{name}-run"));
    std::fs::create_dir_all(&cwd).expect("run dir");
    let stdout = run(Command::new(&exe).current_dir(&cwd).env_remove("LD_LIBRARY_PATH"));
    assert!(stdout.contains(&format!("hearsay {}", env!("CARGO_PKG_VERSION"))), "{stdout}");
    assert!(stdout.contains("sent 1 of 2 flushes"), "{stdout}");
    assert!(cwd.join("data").is_dir(), "the example's storage dir was created");
    exe
}

fn needed(exe: &Path) -> Vec<String> {
    run(Command::new("readelf").arg("-d").arg(exe))
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_install_has_a_soname_links_stripped_libraries_and_split_debug_info() {
    let lib = prefix().join("lib");
    assert!(prefix().join("include/hearsay.h").is_file());
    assert!(lib.join("libhearsay.a").is_file());
    let dynamic = run(Command::new("readelf").arg("-d").arg(lib.join(real_name())));
    assert!(dynamic.contains(&format!("Library soname: [{}]", soname())), "{dynamic}");
    assert_eq!(
        std::fs::read_link(lib.join(soname())).expect("soname link"),
        Path::new(&real_name())
    );
    assert_eq!(
        std::fs::read_link(lib.join("libhearsay.so")).expect("dev link"),
        Path::new(&soname())
    );

    let sections = |p: &Path| run(Command::new("readelf").args(["-S", "-W"]).arg(p));
    let shared = sections(&lib.join(real_name()));
    assert!(!shared.contains(".debug_"), "the installed .so is stripped:\n{shared}");
    assert!(shared.contains(".gnu_debuglink"), "it links to its debug file");
    let debug = sections(&lib.join(format!(".debug/{}.debug", real_name())));
    assert!(debug.contains(".debug_line"), "the debug file holds the line tables");
    let archive = sections(&lib.join("libhearsay.a"));
    // DWARF, that is: a dependency's object may carry a data section whose name merely
    // starts with `.debug_` (`.debug_details`), which strip rightly keeps.
    assert!(
        !archive.contains(".debug_info") && !archive.contains(".debug_line"),
        "the archive is stripped of debug info"
    );
    assert!(archive.contains(".text"), "but keeps its code");

    let pc = std::fs::read_to_string(lib.join("pkgconfig/hearsay.pc")).expect("hearsay.pc");
    assert!(pc.contains(&format!("Version: {}", env!("CARGO_PKG_VERSION"))), "{pc}");
    let libs = pkg_config(&lib.join("pkgconfig"), &["--libs"]);
    assert_eq!(libs, [format!("-L{}", lib.display()), "-lhearsay".into()]);
    let private = pkg_config(&lib.join("pkgconfig"), &["--static", "--libs"]);
    assert!(private.contains(&"-lpthread".to_owned()), "{private:?}");
}

#[test]
fn the_readme_example_runs_on_the_installed_shared_library() {
    let lib = prefix().join("lib");
    let mut flags = pkg_config(&lib.join("pkgconfig"), &["--cflags", "--libs"]);
    flags.push(format!("-Wl,-rpath,{}", lib.display()));
    let exe = build_and_run("dedup-shared", &flags);
    let needed = needed(&exe);
    assert!(needed.iter().any(|l| l.contains(&format!("[{}]", soname()))), "{needed:?}");
}

#[test]
fn the_readme_example_runs_on_the_installed_archive() {
    let lib = prefix().join("lib");
    let pc = lib.join("pkgconfig");
    let archive = format!("{}/libhearsay.a", pkg_config(&pc, &["--variable=libdir"]).join(""));
    let mut flags = pkg_config(&pc, &["--cflags"]);
    flags.extend(
        pkg_config(&pc, &["--static", "--libs"])
            .into_iter()
            .map(|f| if f == "-lhearsay" { archive.clone() } else { f }),
    );
    let exe = build_and_run("dedup-static", &flags);
    let needed = needed(&exe);
    assert!(!needed.iter().any(|l| l.contains("libhearsay")), "{needed:?}");
}

#[test]
fn the_in_repo_pc_links_this_checkout_statically() {
    make(&["pkgconfig"]);
    let flags = pkg_config(&root().join("target/pkgconfig"), &["--cflags", "--libs"]);
    assert!(flags.iter().any(|f| f.ends_with("target/release/libhearsay.a")), "{flags:?}");
    let exe = build_and_run("dedup-in-repo", &flags);
    assert!(!needed(&exe).iter().any(|l| l.contains("libhearsay")));
}

#[test]
fn a_staged_install_lands_under_destdir_with_the_final_prefix() {
    let stage = scratch().join("stage");
    make(&["install", "PREFIX=/opt/hearsay", &format!("DESTDIR={}", stage.display())]);
    let lib = stage.join("opt/hearsay/lib");
    assert!(stage.join("opt/hearsay/include/hearsay.h").is_file());
    assert!(lib.join(real_name()).is_file() && lib.join("libhearsay.a").is_file());
    let pc = std::fs::read_to_string(lib.join("pkgconfig/hearsay.pc")).expect("hearsay.pc");
    assert!(
        pc.contains("libdir=/opt/hearsay/lib") && !pc.contains(&*stage.to_string_lossy()),
        "{pc}"
    );
}
