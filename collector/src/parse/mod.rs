//! Log parsers: pure functions from one line to one normalised [`Event`](crate::Event).
//!
//! (Being written: see the parser work in progress.)
