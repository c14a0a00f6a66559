//! Threads doing background work (SQL queries in the server, event-log compaction) give the
//! CPU to the threads answering requests, and still use every core the requests leave idle.
//!
//! A nice value: a busy thread at nice 0 gets about nine times the CPU of one at 10 (kernel
//! weights 1024 and 110). The kernel's idle class (`SCHED_IDLE`, preempted at once by any
//! waking thread) was measured too, on the serving soak's heavy queries (100k demo, 3 psql
//! loops, 1,000 lookups/s): lookup p99 5.1 / 5.3 ms in the idle class against 5.5 / 5.1 ms at
//! nice 10 — no gain, and a thread in that class gets next to nothing (weight 3) while
//! anything else runs, so a query beside a `panorama run` on the same machine would starve.

/// Lowers the calling thread to `nice`; false when the kernel refused (a sandbox): the work
/// then runs at normal priority — slower requests, nothing lost.
pub fn lower_this_thread(nice: i32) -> bool {
    #[cfg(unix)]
    {
        // On Linux the nice value is per thread: `who` 0 is the calling thread.
        // SAFETY: setpriority reads no memory of ours.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) == 0 }
    }
    #[cfg(not(unix))]
    {
        let _ = nice;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn only_the_calling_thread_is_lowered() {
        // SAFETY (both): plain queries of the calling thread's nice value.
        let own = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let lowered = std::thread::spawn(|| {
            let ok = lower_this_thread(10);
            (ok, unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) })
        })
        .join()
        .unwrap();
        // Refused only when this test itself runs above nice 10 without the right to raise.
        assert!(
            lowered == (true, 10) || (!lowered.0 && own > 10),
            "{lowered:?}"
        );
        assert_eq!(unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }, own);
    }
}
