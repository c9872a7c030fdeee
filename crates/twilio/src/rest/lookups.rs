//! Lookup v2 (`lookups.twilio.com/v2`): what kind of line a number is.

use super::messages::seg;
use super::{Client, Error};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct LookupResponse {
    #[serde(default)]
    line_type_intelligence: Option<LineType>,
}

#[derive(Debug, Deserialize)]
struct LineType {
    #[serde(rename = "type")]
    kind: Option<String>,
}

impl Client {
    /// The line type Lookup reports (`mobile`, `landline`, `fixedVoip`, `nonFixedVoip`,
    /// `tollFree`, …), None when it does not say.
    pub async fn line_type(&self, phone: &str) -> Result<Option<String>, Error> {
        let url = self.base.url(
            "lookups",
            &format!(
                "/v2/PhoneNumbers/{}?Fields=line_type_intelligence",
                seg(phone)
            ),
        );
        let r: LookupResponse = self
            .send_json(self.request(reqwest::Method::GET, &url))
            .await?;
        Ok(r.line_type_intelligence.and_then(|l| l.kind))
    }
}
