//! Generates the gRPC code from proto/. protoc comes from the `protoc-bin-vendored` crate,
//! so a new machine builds without a system protoc; `PROTOC` still chooses another one.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs, not baked in when it is compiled: one build folder may
    // serve several checkouts (the default `CARGO_TARGET_DIR` is shared), and a script
    // compiled in one of them must not look for the .proto files in another.
    let root = format!("{}/../../proto", std::env::var("CARGO_MANIFEST_DIR")?);
    let files = [format!("{root}/onepipe/registry/v1/registry.proto")];
    let mut config = tonic_prost_build::Config::new();
    match std::env::var_os("PROTOC") {
        Some(path) if !path.is_empty() => config.protoc_executable(path),
        _ => config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?),
    };
    tonic_prost_build::configure().compile_with_config(
        config,
        &files,
        std::slice::from_ref(&root),
    )?;
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-env-changed=PROTOC");
    Ok(())
}
