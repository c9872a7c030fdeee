//! How many SMS segments a body costs: GSM-7 (160 septets, 153 per part) when every character
//! is in the GSM 03.38 alphabet or its extension table, otherwise UCS-2 (70 UTF-16 units, 67 per
//! part). Extension characters take two septets and are never split across parts; a surrogate
//! pair is never split either.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Encoding {
    #[serde(rename = "GSM-7")]
    Gsm7,
    #[serde(rename = "UCS-2")]
    Ucs2,
}

impl Encoding {
    pub fn as_str(&self) -> &'static str {
        match self {
            Encoding::Gsm7 => "GSM-7",
            Encoding::Ucs2 => "UCS-2",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Segments {
    pub encoding: Encoding,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2).
    pub units: u32,
    pub count: u32,
}

const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM_EXTENSION: &str = "\u{c}^{}\\[~]|€";

/// Septets a character costs in GSM-7, or None if it is not in the alphabet.
pub fn gsm_septets(c: char) -> Option<u32> {
    if GSM_BASIC.contains(c) {
        Some(1)
    } else if GSM_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Counts the segments of `body`.
pub fn count(body: &str) -> Segments {
    if body.is_empty() {
        return Segments {
            encoding: Encoding::Gsm7,
            units: 0,
            count: 0,
        };
    }
    let gsm: Option<Vec<u32>> = body.chars().map(gsm_septets).collect();
    match gsm {
        Some(costs) => pack(Encoding::Gsm7, &costs, 160, 153),
        None => {
            let costs: Vec<u32> = body.chars().map(|c| c.len_utf16() as u32).collect();
            pack(Encoding::Ucs2, &costs, 70, 67)
        }
    }
}

fn pack(encoding: Encoding, costs: &[u32], single: u32, part: u32) -> Segments {
    let units: u32 = costs.iter().sum();
    if units <= single {
        return Segments {
            encoding,
            units,
            count: 1,
        };
    }
    // Fill parts greedily without splitting a character's units.
    let mut count = 1;
    let mut used = 0;
    for &c in costs {
        if used + c > part {
            count += 1;
            used = 0;
        }
        used += c;
    }
    Segments {
        encoding,
        units,
        count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm_limits() {
        assert_eq!(count("").count, 0);
        assert_eq!(count("hello").count, 1);
        assert_eq!(count(&"a".repeat(160)).count, 1);
        assert_eq!(count(&"a".repeat(161)).count, 2);
        assert_eq!(count(&"a".repeat(306)).count, 2);
        assert_eq!(count(&"a".repeat(307)).count, 3);
        assert_eq!(count("hello").encoding, Encoding::Gsm7);
    }

    #[test]
    fn extension_characters_cost_two_and_do_not_split() {
        let s = format!("{{{}", "1".repeat(158));
        assert_eq!(
            count(&s),
            Segments {
                encoding: Encoding::Gsm7,
                units: 160,
                count: 1
            }
        );
        let s = format!("{{{}", "1".repeat(159));
        assert_eq!(count(&s).count, 2);
        // 152 septets then a 2-septet char: the char moves to the next part.
        let s = format!("{}€{}", "a".repeat(152), "a".repeat(10));
        assert_eq!(count(&s).units, 164);
        assert_eq!(count(&s).count, 2);
        let s = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(count(&s).count, 3);
    }

    #[test]
    fn ucs2_limits_and_surrogates() {
        let s = format!("😜{}", "a".repeat(68));
        assert_eq!(
            count(&s),
            Segments {
                encoding: Encoding::Ucs2,
                units: 70,
                count: 1
            }
        );
        let s = format!("😜{}", "a".repeat(69));
        assert_eq!(count(&s).count, 2);
        assert_eq!(count("`").encoding, Encoding::Ucs2);
        assert_eq!(count("Ünïcödé? ñ").encoding, Encoding::Ucs2); // ï is not GSM
        assert_eq!(count("Ñoño").encoding, Encoding::Gsm7);
    }
}
