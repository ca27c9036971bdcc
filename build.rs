//! Link the `sesame` binary with packed relative relocations (DT_RELR) on
//! Linux with glibc: a position-independent executable carries one
//! relocation per pointer in its read-only data (vtables, string tables),
//! which the loader reads and applies at every start. Packed, the table
//! shrinks from about 1 MiB to a few KiB, and so does the part of the binary
//! every process keeps mapped (its idle RSS). The binary stays
//! position-independent (ASLR unchanged).
//!
//! GNU ld 2.38+ and lld know the option; ld emits packed relocations only
//! when the C library supports them (glibc 2.36+, which records the need as
//! `GLIBC_ABI_DT_RELR`) and otherwise links as before.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
