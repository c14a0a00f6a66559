//! Panorama: a customer data platform engine on Apache DataFusion.
//!
//! A project is a directory with a `panorama.toml` that declares sources (CSV, Parquet, JSON,
//! Delta, object stores, PostgreSQL). [`run::run_project`] materializes them as Parquet into a
//! new run of the project's [`workspace`], and [`session::open_project`] gives a DataFusion
//! `SessionContext` where every source and output is a table.
//!
//! The `panorama` binary is a thin layer over this library.

pub mod activities;
pub mod analytics;
pub mod background_priority;
pub mod charts;
pub mod config;
pub mod demo;
pub mod doctor;
pub mod engine;
pub mod error;
pub mod event_log;
pub mod exports;
pub mod init_from;
pub mod journeys;
pub mod lookup_index;
pub mod output;
pub mod predictions;
pub mod privacy;
pub mod privacy_state;
pub mod project;
pub mod quality;
pub mod query_limits;
pub mod run;
pub mod run_context;
#[cfg(feature = "ballista")]
pub mod scale_out;
pub mod schedule;
pub mod serve;
pub mod session;
pub mod shell;
pub mod sources;
pub mod sql_text;
pub mod state;
pub mod table_catalog;
pub mod table_io;
pub mod text_encoding;
pub mod unify;
pub mod workspace;

pub use error::{Error, Result};
