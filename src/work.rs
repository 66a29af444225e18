//! One work queue for the two places that spread independent tasks over threads (the check rules,
//! and the emitters' targets and parts): each thread takes the next task not yet taken, so the
//! result never depends on which thread ran which task. And [`join`], for two different tasks.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Runs `task(state, index)` for every index in `0..count`, on one thread per element of `states`
/// (the first on the calling thread), each thread with its own state. Stops handing out tasks at
/// the first error. Returns every thread's state, in the order given, or the first error. A panic
/// in a task is resumed on the calling thread.
pub fn run<S, E>(
    states: Vec<S>,
    count: usize,
    task: impl Fn(&mut S, usize) -> Result<(), E> + Sync,
) -> Result<Vec<S>, E>
where
    S: Send,
    E: Send,
{
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let work = |mut state: S| -> Result<S, E> {
        while !failed.load(Ordering::Relaxed) {
            let index = next.fetch_add(1, Ordering::Relaxed);
            if index >= count {
                break;
            }
            if let Err(error) = task(&mut state, index) {
                failed.store(true, Ordering::Relaxed);
                return Err(error);
            }
        }
        Ok(state)
    };
    let mut states = states.into_iter();
    let Some(first) = states.next() else { return Ok(Vec::new()) };
    let results: Vec<Result<S, E>> = std::thread::scope(|scope| {
        let helpers: Vec<_> = states.map(|state| scope.spawn(|| work(state))).collect();
        let mut results = vec![work(first)];
        for helper in helpers {
            results.push(helper.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        }
        results
    });
    results.into_iter().collect()
}

/// Runs `first` on a thread of its own and `second` on the calling thread, and returns both results
/// (`first` runs on the calling thread too, after `second`, when no thread can be made). A panic in
/// `first` is resumed on the calling thread.
pub fn join<A: Send, B>(first: impl FnOnce() -> A + Send, second: impl FnOnce() -> B) -> (A, B) {
    // Whichever thread runs `first` takes it from here: a failed spawn leaves it for this one.
    let first = std::sync::Mutex::new(Some(first));
    let take = || first.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new().spawn_scoped(scope, || take().map(|first| first()));
        let second = second();
        let done = match spawned {
            Ok(handle) => handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(_) => None,
        };
        // `first` is taken exactly once: by the thread, or here when there was none.
        let first = done.or_else(|| take().map(|first| first())).expect("the first task ran");
        (first, second)
    })
}

/// Frees what is no longer needed on a thread of its own, beside the work that remains (a large
/// mesh's loaded document or OUT's baseline is hundreds of thousands of allocations). Inline when
/// no thread can be made.
pub fn retire<T: Send + 'static>(value: T) {
    // A failed spawn hands the closure, and so the value, back to be dropped here.
    let _ = std::thread::Builder::new().name("weave-free".to_owned()).spawn(move || drop(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_returns_both_results_in_order() {
        let (first, second) = join(|| std::thread::current().id(), || std::thread::current().id());
        assert_ne!(first, second, "the first task runs on a thread of its own");
        assert_eq!(second, std::thread::current().id());
        let (text, number) = join(|| "a".repeat(3), || 7);
        assert_eq!((text.as_str(), number), ("aaa", 7));
    }

    #[test]
    #[should_panic(expected = "first task failed")]
    fn join_resumes_a_panic_of_the_first_task() {
        let _ = join(|| -> u8 { panic!("first task failed") }, || 1);
    }

    #[test]
    fn every_task_runs_once_whatever_the_threads() {
        for threads in 1..=4 {
            let states = run(vec![Vec::new(); threads], 100, |done: &mut Vec<usize>, index| {
                done.push(index);
                Ok::<(), ()>(())
            })
            .unwrap();
            let mut all: Vec<usize> = states.into_iter().flatten().collect();
            all.sort_unstable();
            assert_eq!(all, (0..100).collect::<Vec<_>>());
        }
    }

    #[test]
    fn the_first_error_stops_the_queue() {
        let result = run(vec![(); 2], 1_000, |_, index| if index == 3 { Err(index) } else { Ok(()) });
        assert_eq!(result.unwrap_err(), 3);
    }
}
