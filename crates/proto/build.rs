fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto");
    let files = [format!("{root}/onepipe/registry/v1/registry.proto")];
    tonic_prost_build::configure().compile_protos(&files, &[root.to_string()])?;
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    Ok(())
}
