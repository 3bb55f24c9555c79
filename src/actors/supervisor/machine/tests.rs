//! Every transition of the listener's lifecycle, driven in-process: no
//! sockets, no actors, no clock but the one given.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::duration::HumanDuration;
use crate::net::BindErrorKind;
use crate::supervision::{BindFailure, RestartOnFailure};

type M = Machine<&'static str>;
type C = Command<&'static str>;

fn strategies(attempts: u32, max_restarts: u32) -> Strategies {
    Strategies {
        restart: RestartOnFailure {
            max_restarts,
            within: HumanDuration::from_millis(60_000),
            backoff: HumanDuration::from_millis(50),
            backoff_max: HumanDuration::from_millis(1_000),
        },
        retry: RetryAfterCleanup {
            attempts,
            delay: HumanDuration::from_millis(20),
        },
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn plan(port: u16, workers: usize) -> Plan {
    Plan {
        addrs: vec![addr(port)],
        workers,
        recv_buffer: 1 << 20,
    }
}

/// A machine whose incarnation 1 serves `plan(9000, 2)`.
fn serving() -> M {
    let mut m = M::new(strategies(2, 3));
    m.start(plan(9000, 2));
    let cmds = on(&mut m, bound(1, 9000));
    assert!(matches!(cmds[..], [Command::Ready { .. }]), "{cmds:?}");
    m
}

fn on(m: &mut M, event: Event<&'static str>) -> Vec<C> {
    m.on(event, Instant::now(), 0.0)
}

fn bound(id: Id, port: u16) -> Event<&'static str> {
    Event::Bound {
        id,
        addrs: vec![addr(port)],
    }
}

fn exited(id: Id, exit: Exit) -> Event<&'static str> {
    Event::Exited { id, exit }
}

fn busy() -> Exit {
    Exit::BindFailed {
        addr: addr(9000),
        failure: BindFailure::Busy(None),
    }
}

fn reload(plan: Plan, name: &'static str) -> Event<&'static str> {
    Event::Reload {
        plan,
        strategies: strategies(2, 3),
        reload: name,
    }
}

/// The ids the commands spawn, with whom they bind beside.
fn spawned(cmds: &[C]) -> Vec<(Id, Option<Id>)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Spawn { id, beside, .. } => Some((*id, *beside)),
            _ => None,
        })
        .collect()
}

fn applied(cmds: &[C]) -> Vec<(&'static str, bool)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Apply { reload, rebound } => Some((*reload, *rebound)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_first_bind_announces_the_service() {
    let mut m = M::new(strategies(2, 3));
    let cmds = m.start(plan(9000, 2));
    assert_eq!(spawned(&cmds), [(1, None)]);
    assert_eq!(m.phase(), Phase::Starting);
    assert!(m.bound().is_empty(), "nothing bound yet");
    let cmds = on(&mut m, bound(1, 9000));
    assert!(matches!(&cmds[..], [Command::Ready { addrs }] if addrs == &[addr(9000)]));
    assert_eq!((m.phase(), m.bound()), (Phase::Serving, &[addr(9000)][..]));
}

#[test]
fn a_reload_with_the_same_sockets_applies_in_place() {
    let mut m = serving();
    let cmds = on(&mut m, reload(plan(9000, 2), "message"));
    assert_eq!(applied(&cmds), [("message", false)]);
    assert!(spawned(&cmds).is_empty());
}

#[test]
fn port_0_keeps_the_port_first_bound() {
    let mut m = M::new(strategies(2, 3));
    m.start(plan(0, 2));
    on(&mut m, bound(1, 41234));
    let cmds = on(&mut m, reload(plan(0, 2), "message"));
    assert_eq!(applied(&cmds), [("message", false)], "no rebind: {cmds:?}");
    let cmds = on(&mut m, reload(plan(0, 3), "workers"));
    assert!(
        matches!(&cmds[..], [Command::Spawn { plan, .. }] if plan.addrs == [addr(41234)]),
        "{cmds:?}"
    );
}

#[test]
fn new_sockets_bind_before_the_old_leave_and_the_old_group_is_steered_after() {
    let mut m = serving();
    let cmds = on(&mut m, reload(plan(9000, 3), "workers"));
    assert_eq!(spawned(&cmds), [(2, Some(1))], "beside the active sockets");
    assert!(
        applied(&cmds).is_empty(),
        "nothing applies before it answers"
    );
    let cmds = on(&mut m, bound(2, 9000));
    assert!(
        matches!(&cmds[0], Command::Leave { id: 1, stays, steer_to: None } if stays == &[addr(9000)]),
        "{cmds:?}"
    );
    assert_eq!(applied(&cmds), [("workers", true)]);
    assert_eq!(m.active(), Some(2));
    let cmds = on(&mut m, exited(1, Exit::Stopped));
    assert!(
        matches!(
            cmds[..],
            [Command::SteerOwn { id: 2 }, Command::ReleaseMemory]
        ),
        "{cmds:?}"
    );
}

#[test]
fn a_failed_candidate_is_rolled_back_and_the_active_one_serves_on() {
    // The hand-over fails after the candidate bound beside the active
    // sockets (and may have taken their steering): it is rejected, and the
    // active sockets get their steering back.
    let mut m = serving();
    on(&mut m, reload(plan(9000, 3), "workers"));
    let cmds = on(
        &mut m,
        exited(
            2,
            Exit::Failed {
                error: "boom".into(),
            },
        ),
    );
    assert!(
        matches!(&cmds[0], Command::Reject { key: "bind", cause: Cause::Failed(e) } if e == "boom"),
        "{cmds:?}"
    );
    assert!(
        matches!(
            cmds[1..],
            [Command::SteerOwn { id: 1 }, Command::ReleaseMemory]
        ),
        "{cmds:?}"
    );
    assert_eq!((m.active(), m.bound()), (Some(1), &[addr(9000)][..]));
    // A later reload starts afresh.
    let cmds = on(&mut m, reload(plan(9000, 4), "again"));
    assert_eq!(spawned(&cmds), [(3, Some(1))]);
}

#[test]
fn a_busy_new_port_is_retried_then_rejected_blaming_port() {
    let mut m = serving();
    on(&mut m, reload(plan(9100, 2), "port"));
    let busy_9100 = || Exit::BindFailed {
        addr: addr(9100),
        failure: BindFailure::Busy(None),
    };
    for attempt in 1..=2 {
        let id = 1 + attempt as Id;
        let cmds = on(&mut m, exited(id, busy_9100()));
        let scheduled = cmds.iter().find_map(|c| match c {
            Command::Schedule { after, event } => Some((*after, event)),
            _ => None,
        });
        assert!(
            matches!(scheduled, Some((after, Event::Retry { role: Role::Candidate, replaces, attempt: a })) if after == Duration::from_millis(20) && *replaces == id && *a == attempt),
            "{cmds:?}"
        );
        let cmds = on(
            &mut m,
            Event::Retry {
                role: Role::Candidate,
                replaces: id,
                attempt,
            },
        );
        assert_eq!(spawned(&cmds), [(id + 1, Some(1))]);
    }
    let cmds = on(&mut m, exited(4, busy_9100()));
    assert!(
        matches!(
            &cmds[0],
            Command::Reject {
                key: "port",
                cause: Cause::Bind(FailedBind { tries: 3, .. })
            }
        ),
        "{cmds:?}"
    );
    assert_eq!(m.active(), Some(1));
}

#[test]
fn a_candidate_superseded_by_a_newer_reload_hands_back_and_the_newer_waits() {
    let mut m = serving();
    on(&mut m, reload(plan(9000, 3), "first"));
    // Before it answers, a newer configuration: the first candidate
    // leaves, handing its groups' traffic back to the 2 active sockets.
    let cmds = on(&mut m, reload(plan(9000, 4), "second"));
    assert!(
        matches!(&cmds[..], [Command::Leave { id: 2, stays, steer_to: Some(2) }] if stays == &[addr(9000)]),
        "{cmds:?}"
    );
    // Its late answer changes nothing.
    assert!(on(&mut m, bound(2, 9000)).is_empty());
    // Once it is gone, the newer one binds.
    let cmds = on(&mut m, exited(2, Exit::Stopped));
    assert_eq!(spawned(&cmds), [(3, Some(1))], "{cmds:?}");
    let cmds = on(&mut m, bound(3, 9000));
    assert_eq!(applied(&cmds), [("second", true)]);
}

#[test]
fn a_reload_during_a_hand_over_waits_for_the_old_sockets_to_go() {
    let mut m = serving();
    on(&mut m, reload(plan(9000, 3), "first"));
    on(&mut m, bound(2, 9000));
    // Incarnation 1 is still leaving: a rebind now would join a group
    // with sockets it does not know about.
    let cmds = on(&mut m, reload(plan(9000, 1), "second"));
    assert!(cmds.is_empty(), "{cmds:?}");
    // And a newer one replaces the one that waits.
    assert!(on(&mut m, reload(plan(9000, 4), "third")).is_empty());
    let cmds = on(&mut m, exited(1, Exit::Stopped));
    assert_eq!(spawned(&cmds), [(3, Some(2))], "{cmds:?}");
    assert!(matches!(cmds.last(), Some(Command::ReleaseMemory)));
    let cmds = on(&mut m, bound(3, 9000));
    assert_eq!(applied(&cmds), [("third", true)]);
}

#[test]
fn an_in_place_reload_during_a_hand_over_applies_at_once() {
    let mut m = serving();
    on(&mut m, reload(plan(9000, 3), "first"));
    on(&mut m, bound(2, 9000));
    let cmds = on(&mut m, reload(plan(9000, 3), "message"));
    assert_eq!(applied(&cmds), [("message", false)]);
}

#[test]
fn a_restart_comes_back_on_the_port_0_bound() {
    let mut m = M::new(strategies(2, 3));
    m.start(plan(0, 2));
    on(&mut m, bound(1, 41234));
    let failed = Exit::Failed {
        error: "socket".into(),
    };
    let cmds = on(&mut m, exited(1, failed));
    let Some(Command::Schedule { event, .. }) = cmds.into_iter().nth(1) else {
        panic!("no restart scheduled");
    };
    let cmds = on(&mut m, event);
    assert!(
        matches!(&cmds[..], [Command::Spawn { plan, .. }] if plan.addrs == [addr(41234)]),
        "{cmds:?}"
    );
}

#[test]
fn restarts_back_off_then_give_up_past_max_restarts() {
    let mut m = serving();
    let now = Instant::now();
    let mut id = 1;
    for restart in 1..=3u32 {
        let cmds = m.on(
            exited(
                id,
                Exit::Failed {
                    error: "socket".into(),
                },
            ),
            now,
            0.0,
        );
        let delay = match &cmds[..] {
            [Command::Restarting {
                restarts, after, ..
            }, Command::Schedule {
                event: Event::Restart { replaces },
                ..
            }] => {
                assert_eq!((*restarts, *replaces), (restart, id));
                *after
            }
            other => panic!("restart {restart}: {other:?}"),
        };
        assert_eq!(
            delay.is_zero(),
            restart == 1,
            "the first restart is immediate"
        );
        let cmds = on(&mut m, Event::Restart { replaces: id });
        id += 1;
        assert_eq!(spawned(&cmds), [(id, None)]);
        let cmds = on(&mut m, bound(id, 9000));
        assert!(matches!(cmds[..], [Command::Restarted { .. }]), "{cmds:?}");
    }
    let cmds = m.on(
        exited(
            id,
            Exit::Failed {
                error: "socket".into(),
            },
        ),
        now,
        0.0,
    );
    assert!(
        matches!(
            &cmds[..],
            [Command::Finish(Err(Failure::GaveUp { restarts: 3, .. }))]
        ),
        "{cmds:?}"
    );
}

#[test]
fn a_port_busy_at_start_up_is_retried_then_the_service_ends() {
    let mut m = M::new(strategies(2, 3));
    m.start(plan(9000, 2));
    for (id, attempt) in [(1, 1), (2, 2)] {
        let cmds = on(&mut m, exited(id, busy()));
        assert!(
            matches!(&cmds[0], Command::Retrying { attempt: a, .. } if *a == attempt),
            "{cmds:?}"
        );
        let cmds = on(
            &mut m,
            Event::Retry {
                role: Role::Active,
                replaces: id,
                attempt,
            },
        );
        assert_eq!(spawned(&cmds), [(id + 1, None)]);
    }
    let cmds = on(&mut m, exited(3, busy()));
    assert!(
        matches!(
            &cmds[..],
            [Command::Finish(Err(Failure::Bind(FailedBind {
                tries: 3,
                ..
            })))]
        ),
        "{cmds:?}"
    );
}

#[test]
fn a_forbidden_port_is_fatal_at_once() {
    let mut m = M::new(strategies(5, 3));
    m.start(plan(80, 2));
    let forbidden = Exit::BindFailed {
        addr: addr(80),
        failure: BindFailure::Other(BindErrorKind::PermissionDenied, "denied".into()),
    };
    let cmds = on(&mut m, exited(1, forbidden));
    assert!(
        matches!(
            &cmds[..],
            [Command::Finish(Err(Failure::Bind(FailedBind {
                tries: 1,
                ..
            })))]
        ),
        "{cmds:?}"
    );
}

#[test]
fn a_reload_while_the_first_bind_is_retried_can_fix_it() {
    let mut m = M::new(strategies(5, 3));
    m.start(plan(9000, 2));
    on(&mut m, exited(1, busy()));
    let cmds = on(&mut m, reload(plan(9100, 2), "free port"));
    assert_eq!(spawned(&cmds), [(2, Some(1))]);
    let cmds = on(&mut m, bound(2, 9100));
    assert_eq!(applied(&cmds), [("free port", true)]);
    assert!(
        matches!(cmds.last(), Some(Command::Ready { .. })),
        "announced: {cmds:?}"
    );
    // The retry scheduled for the old one is stale now.
    assert!(on(
        &mut m,
        Event::Retry {
            role: Role::Active,
            replaces: 1,
            attempt: 1
        }
    )
    .is_empty());
}

#[test]
fn shutdown_stops_every_incarnation_and_finishes_when_all_are_gone() {
    let mut m = serving();
    on(&mut m, reload(plan(9000, 3), "first"));
    on(&mut m, bound(2, 9000));
    let cmds = on(&mut m, Event::Shutdown);
    let mut stopped: Vec<Id> = cmds
        .iter()
        .filter_map(|c| match c {
            Command::Stop { id } => Some(*id),
            _ => None,
        })
        .collect();
    stopped.sort();
    assert_eq!(stopped, [1, 2]);
    assert_eq!(m.phase(), Phase::Stopping);
    assert!(on(&mut m, exited(1, Exit::Stopped)).is_empty());
    assert!(
        on(&mut m, reload(plan(9000, 4), "late")).is_empty(),
        "no reload while stopping"
    );
    let cmds = on(&mut m, exited(2, Exit::Stopped));
    assert!(matches!(cmds[..], [Command::Finish(Ok(()))]), "{cmds:?}");
}
