/// Form parameters in wire order, repeated names allowed (`MediaUrl`, `StatusCallbackEvent`).
/// Used to build REST requests, and to read them back (the twin) and webhooks (receivers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form(pub Vec<(String, String)>);

impl Form {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `application/x-www-form-urlencoded` bytes (or a query string).
    pub fn parse(body: &[u8]) -> Self {
        Form(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn encode(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(self.0.iter())
            .finish()
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, if present and not empty.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// Every value of `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.0.push((name.into(), value.into()));
        self
    }

    pub fn push_opt<V: ToString>(&mut self, name: &str, value: Option<V>) -> &mut Self {
        if let Some(v) = value {
            self.0.push((name.to_string(), v.to_string()));
        }
        self
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Form {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Form(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_repeats_and_specials() {
        let mut f = Form::new();
        f.push("To", "+15551234567")
            .push("Body", "a&b=c 😀")
            .push("MediaUrl", "https://x/1")
            .push("MediaUrl", "https://x/2");
        let back = Form::parse(f.encode().as_bytes());
        assert_eq!(back, f);
        assert_eq!(
            back.all("MediaUrl").collect::<Vec<_>>(),
            ["https://x/1", "https://x/2"]
        );
        assert_eq!(back.get("Body"), Some("a&b=c 😀"));
        assert_eq!(back.get("Nope"), None);
    }
}
