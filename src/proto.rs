//! Generated gRPC types and services (proto/pgha.proto).
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("pgha.v1");
