//! A cross-tab mutex from the Web Locks API, with a timeout on the wait.
//!
//! web-sys has no lock timeout, so an `AbortSignal` cancels a request that
//! waits too long. The lock is held until the work's promise settles, so the
//! work itself must end: every request it sends has a deadline (`fetch.rs`).
//! Web Locks are missing on insecure origins (a phone on a LAN address):
//! then the work just runs, and the in-tab single flight plus the server's
//! grace window keep it safe.

use std::{cell::RefCell, future::Future, rc::Rc};

use gloo_timers::callback::Timeout;
use js_sys::futures::{future_to_promise, JsFuture};
use wasm_bindgen::{prelude::*, JsCast};
use web_sys::{LockManager, LockOptions};

fn lock_manager() -> Option<LockManager> {
    let locks = web_sys::window()?.navigator().locks();
    // The typed getter hands back `undefined` where the API is missing.
    (!locks.is_undefined() && !locks.is_null()).then_some(locks)
}

/// Runs `work` while holding the lock `name` in every tab of this origin.
/// When locks are missing, or the wait exceeds `timeout_ms`, runs it without
/// the lock. `None` only if the work started under the lock and never finished.
pub async fn with_lock<T, F, Fut>(name: &str, timeout_ms: u32, work: F) -> Option<T>
where
    T: 'static,
    F: FnOnce() -> Fut + 'static,
    Fut: Future<Output = T> + 'static,
{
    let Some(locks) = lock_manager() else {
        return Some(work().await);
    };
    let Ok(controller) = web_sys::AbortController::new() else {
        return Some(work().await);
    };

    let pending_work = Rc::new(RefCell::new(Some(work)));
    let result: Rc<RefCell<Option<T>>> = Rc::new(RefCell::new(None));
    let abort_timer = {
        let controller = controller.clone();
        Rc::new(RefCell::new(Some(Timeout::new(timeout_ms, move || {
            controller.abort()
        }))))
    };

    let granted_callback = {
        let pending_work = pending_work.clone();
        let result = result.clone();
        let abort_timer = abort_timer.clone();
        Closure::once_into_js(move |_lock: JsValue| -> js_sys::Promise {
            // Granted: the timeout no longer applies.
            abort_timer.borrow_mut().take().map(Timeout::cancel);
            let work = pending_work.borrow_mut().take();
            // The lock is held until this promise settles.
            future_to_promise(async move {
                if let Some(work) = work {
                    let value = work().await;
                    *result.borrow_mut() = Some(value);
                }
                Ok(JsValue::UNDEFINED)
            })
        })
    };

    let options = LockOptions::new();
    options.set_signal(&controller.signal());
    let granted = JsFuture::from(locks.request_with_options(
        name,
        &options,
        granted_callback.unchecked_ref(),
    ))
    .await;
    abort_timer.borrow_mut().take().map(Timeout::cancel);

    if granted.is_ok() {
        if let Some(value) = result.borrow_mut().take() {
            return Some(value);
        }
    }
    // Timed out (or the request failed) before the work started: run it anyway.
    let work = pending_work.borrow_mut().take();
    match work {
        Some(work) => Some(work().await),
        None => result.borrow_mut().take(),
    }
}
