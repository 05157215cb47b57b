//! The browser's clock, randomness and time zone, as the spoke core's [`heph_spoke::Env`].

use wasm_bindgen::JsCast;

/// Time, randomness and the local UTC offset as the browser reports them.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct BrowserEnv;

impl heph_spoke::Env for BrowserEnv {
    fn now_ms(&self) -> u64 {
        js_sys::Date::now() as u64
    }

    /// 16 random bytes from `crypto.getRandomValues` (falls back to `Math.random` only if the global
    /// scope has no `crypto`, which no browser with OPFS lacks).
    fn random(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        let global = js_sys::global();
        let crypto = global
            .dyn_ref::<web_sys::WorkerGlobalScope>()
            .and_then(|g| g.crypto().ok());
        if crypto
            .and_then(|c| c.get_random_values_with_u8_array(&mut out).ok())
            .is_none()
        {
            for b in out.iter_mut() {
                *b = (js_sys::Math::random() * 256.0) as u8;
            }
        }
        out
    }

    fn local_offset_ms(&self, at_ms: i64) -> i64 {
        let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at_ms as f64));
        // getTimezoneOffset is minutes *behind* UTC.
        -(d.get_timezone_offset() as i64) * 60_000
    }
}
