//! `traffic-split simulate CONFIG`: what a config will do over time, before it reaches a mesh.
//! It runs the filter's own core in virtual time ([`traffic_split::sim`]), behind a model of
//! Envoy's router (deadlines, retries), under the traffic, failures and pushes given on the
//! command line, and prints per period the weights in force, shares, errors, timeouts,
//! retries, trips, returns and probes (`--json` for the same as JSON, `--png` for a chart drawn
//! by gnuplot). It warns of a route no request reached.
//! - `command`: the run, and the defaults it takes from the config (path, method, start,
//!   length);
//! - `options`: the command line;
//! - `report`: the table and the JSON;
//! - `chart`: the PNG, by gnuplot.

mod chart;
mod command;
mod options;
mod report;

pub use command::run_command;
