//! Pointing a Twilio number's webhooks at this server, as a user would in Twilio's console.

use crate::App;
use twilio::rest::NumberSettings;
use twilio::Client;

/// Finds `phone` in the Twilio account and sets its messaging and voice webhooks to this
/// server. Returns the number's SID.
pub async fn point_webhooks(app: &App, client: &Client, phone: &str) -> Result<String, String> {
    let sid = find(client, phone).await?;
    point(app, client, &sid).await?;
    Ok(sid)
}

/// The SID of `phone` in the client's Twilio account; an error when the account lacks it.
pub async fn find(client: &Client, phone: &str) -> Result<String, String> {
    let found = client
        .find_number(phone)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "{phone} is not a number of Twilio account {}",
                client.account_sid()
            )
        })?;
    Ok(found.sid)
}

/// Sets the number's messaging and voice webhooks to this server.
pub async fn point(app: &App, client: &Client, sid: &str) -> Result<(), String> {
    let base = &app.config().public_url;
    let settings = NumberSettings {
        sms_url: Some(format!("{base}/twilio/messaging")),
        sms_method: Some("POST".into()),
        voice_url: Some(format!("{base}/twilio/voice")),
        voice_method: Some("POST".into()),
        status_callback: Some(format!("{base}/twilio/voice/status")),
        status_callback_method: Some("POST".into()),
        ..Default::default()
    };
    client
        .update_number(sid, &settings)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}
