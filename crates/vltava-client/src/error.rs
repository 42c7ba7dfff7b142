//! Client errors, each a one-line reason a person can act on.

use kafka_protocol::ResponseError;

/// What went wrong talking to a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection could be made (refused, unresolvable, timed out).
    #[error("cannot reach {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    /// The broker answered with a Kafka error code.
    #[error("{message}")]
    Kafka { code: i16, message: String },
    /// The peer closed the connection, sent a malformed frame or an answer we cannot decode.
    #[error("{addr}: {reason}")]
    Protocol { addr: String, reason: String },
    /// The broker does not support a request we need.
    #[error("{0}")]
    Unsupported(String),
    /// Anything else (bad arguments found while building a request, missing objects).
    #[error("{0}")]
    Other(String),
}

impl ClientError {
    /// A Kafka error code with its context, e.g. `topic 'x': ...`. Returns `None` for code 0.
    pub fn from_code(code: i16, context: &str, detail: Option<&str>) -> Option<ClientError> {
        if code == 0 {
            return None;
        }
        let message = match (code, detail.filter(|d| !d.is_empty())) {
            (3, _) => format!("{context} does not exist"),
            (_, Some(d)) => format!("{context}: {d}"),
            (_, None) => format!("{context}: {}", describe_code(code)),
        };
        Some(ClientError::Kafka { code, message })
    }

    /// The Kafka error code, when the broker sent one.
    pub fn code(&self) -> Option<i16> {
        match self {
            ClientError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// `UNKNOWN_TOPIC_OR_PARTITION (This server does not host this topic-partition.)`-style text.
pub fn describe_code(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(e) => format!("{} ({})", error_name(code), e),
        None => format!("error code {code}"),
    }
}

/// The Kafka name of an error code, as Kafka's documentation spells it (`UNKNOWN_TOPIC_OR_PARTITION`).
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(e) => {
            let camel = format!("{e:?}");
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, ch) in camel.chars().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(ch.to_ascii_uppercase());
            }
            out
        }
        None => format!("ERROR_{code}"),
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_messages() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        let e = ClientError::from_code(3, "topic 'x'", None).expect("error");
        assert_eq!(e.to_string(), "topic 'x' does not exist");
        assert!(ClientError::from_code(0, "x", None).is_none());
    }
}
