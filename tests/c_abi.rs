//! The C ABI as C sees it: the committed header matches what cbindgen generates from
//! `src/ffi`, and a C program compiled against that header and the static library runs a
//! two-node cluster through it (tests/c/cluster.c), on gossip and on a real redis-server.

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_committed_header_is_what_cbindgen_generates() {
    let config = cbindgen::Config::from_file(root().join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        // Only the ABI module: the rest of the crate is not C's business.
        .with_src(root().join("src/ffi/mod.rs"))
        .with_config(config)
        .generate()
        .expect("cbindgen parses src/ffi");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let path = root().join("include/hearsay.h");
    if std::env::var_os("HS_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/hearsay.h");
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/hearsay.h is stale: regenerate it with `HS_BLESS=1 cargo test --test c_abi` \
         and commit it"
    );
}

/// `target/<profile>`, where cargo puts the library next to the test binaries' `deps/`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>").to_path_buf()
}

#[test]
fn a_c_program_runs_a_cluster_through_the_header() {
    // The static library of this very build (cargo does not build it for integration tests).
    let status = Command::new(env!("CARGO"))
        .args(["build", "--lib", "--locked", "--quiet"])
        .current_dir(root())
        .status()
        .expect("run cargo build --lib");
    assert!(status.success(), "cargo build --lib failed");
    let lib = target_dir().join("libhearsay.a");
    assert!(lib.exists(), "{} missing", lib.display());
    let exe = target_dir().join("c_cluster");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"])
        .arg("-I")
        .arg(root().join("include"))
        .arg(root().join("tests/c/cluster.c"))
        .arg(&lib)
        .args(["-lgcc_s", "-lpthread", "-lm", "-ldl", "-lrt", "-lutil", "-o"])
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("the C compiler `{cc}` is required: {e}"));
    assert!(out.status.success(), "cc failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let dir = std::env::temp_dir().join(format!("hearsay-c-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let redis = util::redis::RedisServer::start();
    let run = Command::new(&exe).arg(&dir).arg(redis.url()).output().expect("run the C program");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&run.stdout);
    println!("{stdout}");
    assert!(
        run.status.success(),
        "C program failed ({}):\n{stdout}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

#[test]
fn a_careless_c_host_under_address_and_undefined_behaviour_sanitizers() {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--lib", "--locked", "--quiet"])
        .current_dir(root())
        .status()
        .expect("run cargo build --lib");
    assert!(status.success(), "cargo build --lib failed");
    let exe = target_dir().join("c_misuse");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g", "-O1"])
        .args(["-fsanitize=address,undefined", "-fno-sanitize-recover=all"])
        .arg("-fno-omit-frame-pointer")
        .arg("-I")
        .arg(root().join("include"))
        .arg(root().join("tests/c/misuse.c"))
        .arg(target_dir().join("libhearsay.a"))
        .args(["-lgcc_s", "-lpthread", "-lm", "-ldl", "-lrt", "-lutil", "-o"])
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("the C compiler `{cc}` is required: {e}"));
    assert!(out.status.success(), "cc failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let run = Command::new(&exe)
        // Any report ends the run with a non-zero status; leaks are reports too.
        .env("ASAN_OPTIONS", "halt_on_error=1:detect_leaks=1:exitcode=86")
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1:exitcode=87")
        .output()
        .expect("run the misuse program");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    println!("{stdout}");
    assert!(
        run.status.success() && !stderr.contains("Sanitizer") && !stderr.contains("runtime error"),
        "misuse program failed ({}):\n{stdout}\n{stderr}",
        run.status
    );
    assert!(stdout.contains("misuse: all checks passed"), "{stdout}");
}
