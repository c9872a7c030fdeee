//! What every request looks up before anything else — the number a webhook is for, the
//! tenant's Twilio credentials, the tenant an API key acts for — read through short-lived
//! caches. A change made through this process clears them at once (`changed`); one made by
//! another replica is seen within the cache's lifetime.

use super::{store, Signer, Tenant, TwilioAccount};
use crate::cache::Cache;
use crate::crypto::{hash_api_key, MasterKey};
use crate::db::{Db, DbResult};
use crate::numbers::Number;
use std::time::Duration;

const TTL: Duration = Duration::from_secs(2);
const MAX: usize = 10_000;

pub struct Directory {
    numbers: Cache<String, Option<Number>>,
    accounts: Cache<String, Option<TwilioAccount>>,
    signers: Cache<String, Vec<Signer>>,
    keys: Cache<String, Option<Tenant>>,
}

impl Default for Directory {
    fn default() -> Self {
        Directory {
            numbers: Cache::new(TTL, MAX),
            accounts: Cache::new(TTL, MAX),
            signers: Cache::new(TTL, MAX),
            keys: Cache::new(TTL, MAX),
        }
    }
}

impl Directory {
    /// A number by its E.164 value, whichever tenant owns it (for webhooks).
    pub async fn number_by_phone(&self, db: &Db, phone: &str) -> DbResult<Option<Number>> {
        if let Some(n) = self.numbers.get(&phone.to_string()) {
            return Ok(n);
        }
        let n = crate::numbers::store::number_by_phone(db, phone).await?;
        self.numbers.put(phone.to_string(), n.clone());
        Ok(n)
    }

    /// The tenant's Twilio credentials, opened.
    pub async fn twilio_account(
        &self,
        db: &Db,
        key: &MasterKey,
        tenant_id: &str,
    ) -> DbResult<Option<TwilioAccount>> {
        if let Some(a) = self.accounts.get(&tenant_id.to_string()) {
            return Ok(a);
        }
        let a = store::twilio_account(db, key, tenant_id).await?;
        self.accounts.put(tenant_id.to_string(), a.clone());
        Ok(a)
    }

    /// The tenants using a Twilio account, with its auth token (for webhook signatures).
    pub async fn signers(
        &self,
        db: &Db,
        key: &MasterKey,
        account_sid: &str,
    ) -> DbResult<Vec<Signer>> {
        if let Some(s) = self.signers.get(&account_sid.to_string()) {
            return Ok(s);
        }
        let s = store::signers(db, key, account_sid).await?;
        self.signers.put(account_sid.to_string(), s.clone());
        Ok(s)
    }

    /// The tenant an API key acts for. Cached by the key's hash, never by the key.
    pub async fn tenant_for_key(&self, db: &Db, key: &str) -> DbResult<Option<Tenant>> {
        let hash = hash_api_key(key);
        if let Some(t) = self.keys.get(&hash) {
            return Ok(t);
        }
        let t = store::tenant_for_key(db, key).await?;
        self.keys.put(hash, t.clone());
        Ok(t)
    }

    /// Something about tenants, numbers, credentials or keys changed here.
    pub fn changed(&self) {
        self.numbers.clear();
        self.accounts.clear();
        self.signers.clear();
        self.keys.clear();
    }
}
