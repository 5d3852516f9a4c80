//! Where each thread's last error message lives between a failed call and
//! `lc_last_error`.
//!
//! On Unix, a POSIX thread-specific key rather than a Rust thread-local. Rust's
//! thread-locals register their destructors with the C library's thread-exit list
//! (`__cxa_thread_atexit_impl` on glibc), which has already run when the thread's
//! pthread-key destructors run: a host whose first livecore call on a thread fails inside
//! one of its own key destructors left the message, and the C library's record of the
//! destructor, allocated for good. A value set in a key while key destructors run is
//! destroyed in a further round (POSIX repeats the rounds while values remain, up to
//! `PTHREAD_DESTRUCTOR_ITERATIONS`), so the message is freed there too. No crate keeps a
//! value this way, hence the few lines over `libc` here. Elsewhere, a thread-local.

use std::ffi::{c_char, CString};

/// Replaces this thread's message with `message`.
pub(crate) fn set(message: CString) {
    slot::set(message);
}

/// This thread's message, valid until the next [`set`] on this thread; an empty string
/// when there is none (or nowhere to keep one).
pub(crate) fn get() -> *const c_char {
    slot::get().unwrap_or(c"".as_ptr())
}

#[cfg(unix)]
mod slot {
    use std::ffi::{c_char, c_void, CString};
    use std::sync::OnceLock;

    use crate::ffi::status::{boundary, lc_status};

    /// The key, made on first use; `None` if the system had no key left to give.
    static KEY: OnceLock<Option<libc::pthread_key_t>> = OnceLock::new();

    fn key() -> Option<libc::pthread_key_t> {
        *KEY.get_or_init(|| {
            let mut key: libc::pthread_key_t = 0;
            // SAFETY: `key` is a live local for the call to write; `free_message` is a
            // destructor of the type the call expects.
            let made = unsafe { libc::pthread_key_create(&mut key, Some(free_message)) };
            (made == 0).then_some(key)
        })
    }

    /// The key's destructor: frees a message [`set`] stored. Inside the panic boundary as
    /// every function C calls (the status has nowhere to go).
    unsafe extern "C" fn free_message(message: *mut c_void) {
        let _ = boundary("free_message", || {
            if !message.is_null() {
                // SAFETY: the key only ever holds pointers from `CString::into_raw` (`set`),
                // and the C library hands each to this destructor once, after clearing it.
                drop(unsafe { CString::from_raw(message.cast()) });
            }
            Ok(lc_status::LC_OK)
        });
    }

    pub(super) fn set(message: CString) {
        let Some(key) = key() else { return };
        // SAFETY: `key` was made by `pthread_key_create` and is never deleted.
        let previous = unsafe { libc::pthread_getspecific(key) };
        let raw = message.into_raw();
        // SAFETY: as above; the value is a pointer this thread owns from now on.
        if unsafe { libc::pthread_setspecific(key, raw.cast()) } != 0 {
            // Not stored (no memory for the key's slot): keep the previous message.
            // SAFETY: `raw` came from `into_raw` just above and was not stored.
            drop(unsafe { CString::from_raw(raw) });
            return;
        }
        if !previous.is_null() {
            // SAFETY: the key held `previous`, a pointer from `into_raw` that only this
            // thread can reach, and no longer holds it.
            drop(unsafe { CString::from_raw(previous.cast()) });
        }
    }

    pub(super) fn get() -> Option<*const c_char> {
        // SAFETY: `key` was made by `pthread_key_create` and is never deleted.
        let message = unsafe { libc::pthread_getspecific(key()?) };
        (!message.is_null()).then_some(message.cast_const().cast())
    }
}

#[cfg(not(unix))]
mod slot {
    use std::cell::RefCell;
    use std::ffi::{c_char, CString};

    thread_local! {
        static MESSAGE: RefCell<Option<CString>> = const { RefCell::new(None) };
    }

    /// During thread-local teardown there is nowhere to keep it: the message is dropped.
    pub(super) fn set(message: CString) {
        let _ = MESSAGE.try_with(|slot| {
            if let Ok(mut slot) = slot.try_borrow_mut() {
                *slot = Some(message);
            }
        });
    }

    pub(super) fn get() -> Option<*const c_char> {
        MESSAGE
            .try_with(|slot| {
                slot.try_borrow()
                    .ok()
                    .and_then(|slot| slot.as_ref().map(|message| message.as_ptr()))
            })
            .ok()
            .flatten()
    }
}
