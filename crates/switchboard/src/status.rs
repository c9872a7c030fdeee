//! The statuses and directions of messages and calls: one vocabulary, typed. They are stored
//! and shown as Twilio's strings (`in-progress`, `no-answer`, …); statuses are ordered, and
//! what the API shows only moves forward.

use serde::{Serialize, Serializer};

macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $s:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),* }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$variant),)* _ => None }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

vocabulary! {
    /// Who started it: a person (`inbound`) or the tenant (`outbound`).
    Direction {
        Inbound => "inbound",
        Outbound => "outbound",
    }
}

impl Direction {
    /// From what is stored: Twilio's `outbound-api` and `outbound-dial` are both ours to place.
    pub fn from_stored(s: &str) -> Direction {
        if s == "inbound" {
            Direction::Inbound
        } else {
            Direction::Outbound
        }
    }
}

vocabulary! {
    /// Where a message is: `accepted` (stored, waiting) → `submitting` (being handed to
    /// Twilio) → `queued` → `sending` → `sent` → `delivered` (→ `read`), or `undelivered`,
    /// `failed`, `canceled`; inbound messages are `received`.
    MessageStatus {
        Accepted => "accepted",
        Scheduled => "scheduled",
        Submitting => "submitting",
        Queued => "queued",
        Sending => "sending",
        Sent => "sent",
        Delivered => "delivered",
        Undelivered => "undelivered",
        Failed => "failed",
        Canceled => "canceled",
        Received => "received",
        Read => "read",
    }
}

impl MessageStatus {
    /// Order: a callback is applied only when it moves a message forward.
    pub fn rank(self) -> i64 {
        use MessageStatus::*;
        match self {
            Accepted | Scheduled => 0,
            Submitting => 1,
            Queued => 2,
            Sending => 3,
            Sent => 4,
            Delivered | Undelivered | Failed | Canceled | Received => 5,
            Read => 6,
        }
    }

    /// Nothing changes after these (`delivered` can still become `read`).
    pub fn is_final(self) -> bool {
        use MessageStatus::*;
        matches!(self, Undelivered | Failed | Canceled | Read | Received)
    }

    /// Waiting for Twilio's word on it (its status may still be polled).
    pub fn in_flight(self) -> bool {
        use MessageStatus::*;
        matches!(self, Queued | Sending | Sent)
    }

    /// Not yet handed to Twilio for good: the dispatcher's to send.
    pub fn to_send(self) -> bool {
        matches!(self, MessageStatus::Accepted | MessageStatus::Submitting)
    }
}

vocabulary! {
    /// Where a call is: `accepted` → `submitting` → `queued` → `initiated` → `ringing` →
    /// `in-progress` → `completed`, or `busy`, `no-answer`, `failed`, `canceled`.
    CallStatus {
        Accepted => "accepted",
        Submitting => "submitting",
        Queued => "queued",
        Initiated => "initiated",
        Ringing => "ringing",
        InProgress => "in-progress",
        Completed => "completed",
        Busy => "busy",
        NoAnswer => "no-answer",
        Failed => "failed",
        Canceled => "canceled",
    }
}

impl CallStatus {
    /// Order; the last five are final.
    pub fn rank(self) -> i64 {
        use CallStatus::*;
        match self {
            Accepted | Submitting => 0,
            Queued => 1,
            Initiated => 2,
            Ringing => 3,
            InProgress => 4,
            Completed | Busy | NoAnswer | Failed | Canceled => 5,
        }
    }

    pub fn is_final(self) -> bool {
        self.rank() == 5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_as_written() {
        for s in MessageStatus::ALL {
            assert_eq!(MessageStatus::parse(s.as_str()), Some(*s));
        }
        for s in CallStatus::ALL {
            assert_eq!(CallStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(MessageStatus::parse("teleported"), None);
        assert_eq!(
            serde_json::to_string(&CallStatus::NoAnswer).unwrap(),
            "\"no-answer\""
        );
        assert_eq!(Direction::from_stored("outbound-dial"), Direction::Outbound);
    }

    #[test]
    fn statuses_are_ordered() {
        use MessageStatus::*;
        assert!(Sent.rank() > Queued.rank() && Delivered.rank() > Sent.rank());
        assert_eq!(Delivered.rank(), Undelivered.rank());
        assert!(Read.rank() > Delivered.rank());
        assert!(Failed.is_final() && !Delivered.is_final());
        assert!(CallStatus::Busy.is_final() && !CallStatus::Ringing.is_final());
    }
}
