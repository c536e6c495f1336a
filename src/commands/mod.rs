//! One module per `safeaware` subcommand.

pub mod bench;
pub mod client;
pub mod data;
pub mod doctor;
pub mod error_budget;
pub mod eval;
pub mod experiment;
pub mod export;
pub mod inspect;
pub mod plan;
pub mod recipe;
pub mod serve;
pub mod train;
