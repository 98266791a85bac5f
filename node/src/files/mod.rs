//! Files an office exchanges: spreadsheets read in (`spreadsheet`, then
//! `roster`, `teams`, `stations` and `ledger` give their rows meaning) and reports written out
//! (`report`: monthly tables, quarterly bulletins, certificates).
//!
//! Layer: may use only the base modules and the protocol. Must never use
//! the store, the network or the API: a file is turned into rows (or figures
//! into a file) here, and written by the caller.

pub mod ledger;
pub mod report;
pub mod roster;
pub mod spreadsheet;
pub mod stations;
pub mod teams;

#[cfg(test)]
mod reference_tests;
