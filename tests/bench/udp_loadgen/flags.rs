//! `--name value` options, checked: every mistake names the flag and the
//! offending value.

use std::net::SocketAddr;
use std::str::FromStr;

/// The options given to one command.
pub struct Flags {
    command: &'static str,
    pairs: Vec<(String, String)>,
}

impl Flags {
    /// Reads `args` as `--name value` pairs, each name one of `known`.
    pub fn parse(command: &'static str, args: &[String], known: &[&str]) -> Result<Flags, String> {
        let mut pairs = Vec::new();
        let mut rest = args.iter();
        while let Some(name) = rest.next() {
            if !known.contains(&name.as_str()) {
                return Err(format!(
                    "{command}: unknown option '{name}' (known: {})",
                    known.join(" ")
                ));
            }
            let Some(value) = rest.next() else {
                return Err(format!("{command}: {name} needs a value"));
            };
            pairs.push((name.clone(), value.clone()));
        }
        Ok(Flags { command, pairs })
    }

    /// The last value given for `name`, parsed, or `default` if absent.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.pairs.iter().rev().find(|(n, _)| n == name) {
            None => Ok(default),
            Some((_, value)) => value
                .parse()
                .map_err(|_| format!("{}: {name} '{value}': not a valid value", self.command)),
        }
    }

    /// A number in `min..=max`, or `default` if absent.
    pub fn number(&self, name: &str, default: u64, min: u64, max: u64) -> Result<u64, String> {
        let value = self.get(name, default)?;
        if value < min || value > max {
            return Err(format!("{}: {name} {value}: expected {min} to {max}", self.command));
        }
        Ok(value)
    }

    /// A loopback address: the benchmarks never send anywhere else.
    pub fn target(&self) -> Result<SocketAddr, String> {
        let Some((_, text)) = self.pairs.iter().rev().find(|(n, _)| n == "--target") else {
            return Err(format!("{}: --target ADDR is required", self.command));
        };
        let addr: SocketAddr = text
            .parse()
            .map_err(|_| format!("{}: --target '{text}': expected IP:PORT", self.command))?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "{}: --target {addr}: only loopback addresses are measured",
                self.command
            ));
        }
        Ok(addr)
    }
}
