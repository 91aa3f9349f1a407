//! Whose answers the lab's exercise tests run (docs/lab.md, "Exercises"): the student's
//! files by default, the teacher's key with `LAB=key`, one of the key's catalogued
//! mistakes with `LAB=mistake:NAME` (docs/lab/key.md's table, checked by
//! tests/lab_exercises.sh). The first line each exercise binary prints says which.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Once;

/// Whose answer a test run checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answers {
    /// The student's file (LAB unset, or `LAB=mine`).
    Mine,
    /// The teacher's key (`LAB=key`).
    Key,
    /// A wrong answer from the key's table of mistakes (`LAB=mistake:NAME`).
    Mistake(String),
}

/// Whose answers to test, from `LAB`; panics naming the value if it is none of the above.
pub fn answers() -> Answers {
    match std::env::var("LAB").as_deref() {
        Err(_) | Ok("" | "mine") => Answers::Mine,
        Ok("key") => Answers::Key,
        Ok(other) => match other.strip_prefix("mistake:") {
            Some(name) => Answers::Mistake(name.to_string()),
            None => panic!("LAB={other:?}: expected LAB=key, LAB=mine or LAB=mistake:NAME"),
        },
    }
}

/// Says once, straight to the terminal (test output capture does not hold it back), whose
/// answers this run checks: `mine` is the student's file, `key` the teacher's answer.
pub fn announce(exercise: &str, mine: &str, key: &str) -> Answers {
    static SAID: Once = Once::new();
    let answers = answers();
    SAID.call_once(|| {
        let line = match &answers {
            Answers::Mine => format!("{exercise}: testing YOUR {mine} (LAB=key tests the key)"),
            Answers::Key => {
                format!("{exercise}: LAB=key: testing THE TEACHER'S KEY {key}, not your {mine}")
            }
            Answers::Mistake(name) => {
                format!("{exercise}: LAB=mistake:{name}: testing a known wrong answer")
            }
        };
        let _ = writeln!(std::io::stderr(), "{line}");
    });
    answers
}

/// Reads to EOF or panics with `failure` (the exercise's message, which docs/lab.md quotes),
/// the error, and what had come, capped ([`shown`](super::client::shown)).
#[track_caller]
pub fn read_until_eof(mut stream: &TcpStream, failure: &str) -> Vec<u8> {
    let mut received = Vec::new();
    if let Err(e) = stream.read_to_end(&mut received) {
        panic!("{failure}: {e}, after {}", super::client::shown(&received));
    }
    received
}
