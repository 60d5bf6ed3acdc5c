//! What was observed: sources, parsers and the normalised event every later stage consumes.

mod event;
pub mod parse;
mod pipe;
mod state;

pub use event::{Category, Event, EventId};
pub use pipe::{AckStatus, AckToken, AckWaiter, Batch, RawRecord};
pub use state::{StateError, open_sqlite};
