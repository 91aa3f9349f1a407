//! For the classroom: `--explain` (each event told beside its Go line) and `tcprelay demo`.

pub mod demo;
pub mod explain;
