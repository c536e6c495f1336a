//! Tools behind `safeaware data validate | stats | preview`: open any data input (a training
//! file or a benchmark spec), check it line by line, summarise it, draw a contact sheet.

pub mod font;
pub mod preview;
pub mod source;
pub mod stats;
pub mod validate;

pub use source::{Entry, Input, LoadError, Loaded};
