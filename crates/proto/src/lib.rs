//! gRPC messages, clients and servers generated from `proto/` at build time
//! (generated code is not committed).
//!
//! ```no_run
//! use onepipe_proto::registry::v1::registry_client::RegistryClient;
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let mut client = RegistryClient::connect("http://127.0.0.1:8090").await?;
//! # Ok(()) }
//! ```

pub mod registry {
    pub mod v1 {
        #![allow(clippy::all, missing_docs)]
        tonic::include_proto!("onepipe.registry.v1");
    }
}
