//! Gives the shared library its SONAME, so programs linked with `-lhearsay` record the ABI
//! they were built against rather than the bare `libhearsay.so` development link.
//!
//! The ABI version follows cargo-c's rule for Rust's semver: the major version from 1.0 on
//! (`libhearsay.so.1`), and `0.<minor>` before it (`libhearsay.so.0.1`), because every 0.x
//! minor release may break the ABI. `make install` reads the SONAME back from the built
//! library (`readelf -d`), so this is the only place the rule lives.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    // ELF platforms only: macOS names libraries by install name, Windows by DLL name.
    if matches!(os.as_str(), "macos" | "ios" | "windows") {
        return;
    }
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_default();
    let minor = std::env::var("CARGO_PKG_VERSION_MINOR").unwrap_or_default();
    let abi = if major == "0" { format!("0.{minor}") } else { major };
    // The cdylib only: the rlib and staticlib have no SONAME.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libhearsay.so.{abi}");
}
