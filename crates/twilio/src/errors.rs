//! What Twilio's error codes mean, for the codes a messaging and voice app meets: in REST
//! error bodies and in the `ErrorCode` of status callbacks.

/// A short description of a Twilio error code, and what usually fixes it.
pub fn describe(code: i64) -> Option<&'static str> {
    Some(match code {
        20001 => "Bad request: Twilio refused the request's parameters",
        20003 => "Authentication failed: wrong Account SID or auth token, or a suspended account",
        20403 => "Forbidden: the Twilio account is suspended or closed",
        20404 => "Not found: the resource does not exist at Twilio (or was deleted)",
        20429 => "Too many requests: Twilio's rate limit; sending is retried after Retry-After",
        21211 => "Invalid 'To' phone number",
        21212 => "Invalid 'From' phone number",
        21408 => "The account has no permission to send to this region (geo permissions)",
        21606 => "The 'From' number is not an SMS-capable number owned by the account",
        21608 => "Trial accounts can only send to verified numbers",
        21610 => "The recipient replied STOP: Twilio refuses messages to them from this sender until they reply START",
        21611 => "The 'From' number's message queue is full: send more slowly",
        21612 => "Twilio cannot route a message from this sender to this destination",
        21614 => "'To' is not a mobile number (a landline or an invalid number)",
        30001 => "Queue overflow: too many messages were queued for the sender",
        30002 => "The Twilio account was suspended",
        30003 => "Unreachable destination handset: the phone is off or out of coverage",
        30004 => "Message blocked: the recipient or their carrier blocks it",
        30005 => "Unknown destination handset: the number does not exist or is no longer in service",
        30006 => "Landline or unreachable carrier: the number cannot receive SMS",
        30007 => "Message filtered by the carrier (spam or content rules)",
        30008 => "Unknown delivery error: the carrier gave no reason",
        11200 => "Twilio could not fetch the webhook URL",
        11205 => "Twilio could not connect to the webhook URL",
        16101 => "The recording was too short to keep",
        16102 => "The recording was silent",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_codes_are_described() {
        assert!(super::describe(30003).unwrap().contains("Unreachable"));
        assert!(super::describe(21610).unwrap().contains("STOP"));
        assert_eq!(super::describe(12345), None);
    }
}
