//! Enumerations of Twilio's REST and webhook vocabulary (names from the OpenAPI spec), and RFC
//! 2822 dates as the 2010 API writes them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A string enumeration that keeps values it does not know, because Twilio adds values without
/// notice and a receiver must not fail on them.
macro_rules! wire_enum {
    ($(#[$m:meta])* $ty:ident { $($variant:ident => $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $ty {
            $($variant,)*
            /// A value this crate does not know yet, kept as sent.
            Other(String),
        }
        impl $ty {
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $s,)*
                    Self::Other(s) => s,
                }
            }
            /// Every known value.
            pub const ALL: &'static [$ty] = &[$(Self::$variant),*];
        }
        impl std::str::FromStr for $ty {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(match s {
                    $($s => Self::$variant,)*
                    other => Self::Other(other.to_string()),
                })
            }
        }
        impl From<&str> for $ty {
            fn from(s: &str) -> Self {
                let Ok(v) = s.parse();
                v
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok(Self::from(s.as_str()))
            }
        }
    };
}

wire_enum!(
    /// `message_enum_status`.
    MessageStatus {
        Queued => "queued",
        Sending => "sending",
        Sent => "sent",
        Failed => "failed",
        Delivered => "delivered",
        Undelivered => "undelivered",
        Receiving => "receiving",
        Received => "received",
        Accepted => "accepted",
        Scheduled => "scheduled",
        Read => "read",
        PartiallyDelivered => "partially_delivered",
        Canceled => "canceled",
    }
);

impl MessageStatus {
    /// Whether no later status can follow (the message's fate is known).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Failed
                | Self::Delivered
                | Self::Undelivered
                | Self::Received
                | Self::Read
                | Self::Canceled
        )
    }
}

wire_enum!(
    /// `message_enum_direction`.
    MessageDirection {
        Inbound => "inbound",
        OutboundApi => "outbound-api",
        OutboundCall => "outbound-call",
        OutboundReply => "outbound-reply",
    }
);

wire_enum!(
    /// `call_enum_status`, plus `initiated` which status callbacks carry.
    CallStatus {
        Queued => "queued",
        Initiated => "initiated",
        Ringing => "ringing",
        InProgress => "in-progress",
        Completed => "completed",
        Busy => "busy",
        Failed => "failed",
        NoAnswer => "no-answer",
        Canceled => "canceled",
    }
);

/// Formats a time as the 2010 API does: `Mon, 16 Aug 2010 03:45:01 +0000`.
pub fn rfc2822(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

/// Parses an RFC 2822 date as the 2010 API writes it.
pub fn parse_rfc2822(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Serde helpers for optional RFC 2822 dates.
pub mod rfc2822_opt {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(t) => s.serialize_str(&rfc2822(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        match s {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => parse_rfc2822(&s)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 2822 date: {s}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn dates_round_trip() {
        let t = Utc.with_ymd_and_hms(2010, 8, 16, 3, 45, 1).unwrap();
        assert_eq!(rfc2822(t), "Mon, 16 Aug 2010 03:45:01 +0000");
        assert_eq!(parse_rfc2822("Mon, 16 Aug 2010 03:45:01 +0000"), Some(t));
    }

    #[test]
    fn unknown_values_are_kept() {
        assert_eq!(MessageStatus::from("delivered"), MessageStatus::Delivered);
        assert_eq!(
            MessageStatus::from("teleported"),
            MessageStatus::Other("teleported".into())
        );
        let v: MessageStatus = serde_json::from_str("\"partially_delivered\"").unwrap();
        assert_eq!(v, MessageStatus::PartiallyDelivered);
        assert_eq!(
            serde_json::to_string(&CallStatus::NoAnswer).unwrap(),
            "\"no-answer\""
        );
    }
}
