//! The HA shell's errors: what the loop was doing (a stable phrase, the kind a failing loop logs once) and why.

use crate::dcs::client::ClientError;
use crate::postgres::PgError;

/// Why an HA action or loop iteration failed.
#[derive(Debug, thiserror::Error)]
pub enum HaError {
    /// A step failed; `what` names the step.
    #[error("{what}")]
    Failed {
        what: &'static str,
        #[source]
        cause: Box<Cause>,
    },
    /// Something the step needs is not there (no DCS session, say).
    #[error("{0}")]
    Missing(&'static str),
    /// The loop refuses to go on: the message says why.
    #[error("{0}")]
    Refused(String),
    /// A call whose own error says enough.
    #[error(transparent)]
    Plain(Box<Cause>),
}

/// The failure under a step.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    #[error(transparent)]
    Postgres(#[from] PgError),
    #[error(transparent)]
    Dcs(#[from] ClientError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Fence(#[from] crate::fence::FenceError),
    #[error(transparent)]
    Ha(#[from] Box<HaError>),
}

/// `?` on a call whose error needs no step name.
macro_rules! plain_from {
    ($($t:ty),*) => {$(
        impl From<$t> for HaError {
            fn from(e: $t) -> HaError {
                HaError::Plain(Box::new(e.into()))
            }
        }
    )*};
}
plain_from!(PgError, ClientError, std::io::Error, crate::fence::FenceError);

impl From<HaError> for Cause {
    fn from(e: HaError) -> Cause {
        Cause::Ha(Box::new(e))
    }
}

impl HaError {
    /// The step and every cause under it, outermost first (`reading the cluster: connection refused`).
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            // A transparent `Cause` shows its inner error's text: skip repeats.
            let next = s.to_string();
            if !text.ends_with(&next) {
                text = format!("{text}: {next}");
            }
            source = s.source();
        }
        text
    }
}

/// Names the step a fallible call belongs to.
pub trait Step<T> {
    fn step(self, what: &'static str) -> Result<T, HaError>;
}

impl<T, E: Into<Cause>> Step<T> for Result<T, E> {
    fn step(self, what: &'static str) -> Result<T, HaError> {
        self.map_err(|e| HaError::Failed {
            what,
            cause: Box::new(e.into()),
        })
    }
}

impl<T> Step<T> for Option<T> {
    fn step(self, what: &'static str) -> Result<T, HaError> {
        self.ok_or(HaError::Missing(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_names_every_step_once() {
        let io = || std::io::Error::other("disk full");
        let cases: Vec<(HaError, &str, &str)> = vec![
            (
                Err::<(), _>(io()).step("writing the marker").unwrap_err(),
                "writing the marker",
                "writing the marker: disk full",
            ),
            (
                Err::<(), _>(Err::<(), _>(io()).step("inner").unwrap_err())
                    .step("outer")
                    .unwrap_err(),
                "outer",
                "outer: inner: disk full",
            ),
            (
                None::<()>.step("no DCS session").unwrap_err(),
                "no DCS session",
                "no DCS session",
            ),
            (HaError::Refused("not now".into()), "not now", "not now"),
        ];
        for (error, kind, chain) in cases {
            assert_eq!(error.to_string(), kind);
            assert_eq!(error.chain(), chain);
        }
    }
}
