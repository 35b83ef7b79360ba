//! Single flight: one task does the work, any number of others await its result.

use std::{
    cell::RefCell,
    future::Future,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll, Waker},
};

pub struct Flight<T: Clone> {
    result: RefCell<Option<T>>,
    waiters: RefCell<Vec<Waker>>,
}

impl<T: Clone> Flight<T> {
    pub fn new() -> Rc<Self> {
        Rc::new(Self {
            result: RefCell::new(None),
            waiters: RefCell::new(Vec::new()),
        })
    }

    pub fn finish(&self, value: T) {
        *self.result.borrow_mut() = Some(value);
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for waker in waiters {
            waker.wake();
        }
    }

    pub fn wait(self: &Rc<Self>) -> FlightWait<T> {
        FlightWait(self.clone())
    }
}

pub struct FlightWait<T: Clone>(Rc<Flight<T>>);

impl<T: Clone> Future for FlightWait<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if let Some(value) = self.0.result.borrow().as_ref() {
            return Poll::Ready(value.clone());
        }
        self.0.waiters.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }
}
