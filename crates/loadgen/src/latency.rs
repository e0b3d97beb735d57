//! Update latency under coalescing. A server may skip intermediate states
//! (Longhouse holds a client's updates to one per `UPDATE_INTERVAL_MS`), so
//! "when did the last receiver get update k" is measured as when the last
//! receiver had update k *or a newer one* of the same sender: the time until
//! everyone's view was at least that fresh. Each receipt's own latency, and
//! how many updates reached every receiver as themselves, are counted too.

use crate::client::Delivery;

/// One sender's storm: its number and when each state was sent (µs; index
/// is the sequence number, 0 being the state it joined with).
pub struct Sent<'a> {
    /// The sender's number.
    pub n: u32,
    /// Send times by sequence number.
    pub at: &'a [u64],
}

/// One receiver's storm states, in arrival order.
pub struct Received<'a> {
    /// The receiver's own number (it receives nothing of its own).
    pub n: u32,
    /// What it received.
    pub deliveries: &'a [Delivery],
}

/// What [`measure`] finds.
#[derive(Debug, Default)]
pub struct Figures {
    /// Per update sent (sequence 1 on): ms from its send until the last
    /// receiver had it or a newer state of its sender.
    pub to_last_ms: Vec<f64>,
    /// Per receipt: ms from the send of the state received.
    pub receipt_ms: Vec<f64>,
    /// Updates that some receiver never had, nor anything newer.
    pub unreached: u64,
    /// Updates every receiver got as themselves (not skipped).
    pub delivered_to_all: u64,
    /// Updates sent (sequence 1 on), over all senders.
    pub sent: u64,
    /// Storm states received, per receiver, in the order given.
    pub received: Vec<u64>,
    /// Storm states sent to each receiver (by everyone else), same order.
    pub sent_to: Vec<u64>,
    /// The first storm send and the last receipt, µs.
    pub span: Option<(u64, u64)>,
}

/// Measures a storm from every sender's send times and every receiver's
/// receipts. Receipts of unknown senders or sequence numbers, and receipts
/// no newer than one already had from the same sender, are ignored.
pub fn measure(senders: &[Sent], receivers: &[Received]) -> Figures {
    let mut f = Figures::default();
    let index: std::collections::HashMap<u32, usize> =
        senders.iter().enumerate().map(|(i, s)| (s.n, i)).collect();
    // Per sender and sequence: the latest "had it or newer" over receivers
    // (u64::MAX: someone never did), and how many got it as itself.
    let mut last: Vec<Vec<u64>> = senders.iter().map(|s| vec![0; s.at.len()]).collect();
    let mut exact: Vec<Vec<u32>> = senders.iter().map(|s| vec![0; s.at.len()]).collect();
    let mut first_sent = u64::MAX;
    for s in senders {
        f.sent += s.at.len().saturating_sub(1) as u64;
        if let Some(&t) = s.at.get(1) {
            first_sent = first_sent.min(t);
        }
    }
    let mut last_receipt = 0u64;
    for r in receivers {
        // This receiver's arrivals, per sender.
        let mut by: Vec<Vec<(u32, u64)>> = vec![Vec::new(); senders.len()];
        let mut newest: Vec<u32> = vec![0; senders.len()];
        let mut received = 0u64;
        for d in r.deliveries {
            let Some(&i) = index.get(&d.n) else { continue };
            let Some(&sent) = senders[i].at.get(d.seq as usize) else {
                continue;
            };
            // A repeat (a renewal) or an older state is no new update.
            if d.seq <= newest[i] || d.n == r.n {
                continue;
            }
            newest[i] = d.seq;
            received += 1;
            by[i].push((d.seq, d.at));
            exact[i][d.seq as usize] += 1;
            f.receipt_ms.push(ms(d.at.saturating_sub(sent)));
            last_receipt = last_receipt.max(d.at);
        }
        f.received.push(received);
        let mut sent_to = 0u64;
        for (i, s) in senders.iter().enumerate() {
            if s.n == r.n {
                continue;
            }
            sent_to += s.at.len().saturating_sub(1) as u64;
            // Arrival order: sequence numbers up to the highest seen so far
            // are reached at this arrival.
            let mut reached = 0usize;
            for &(seq, at) in &by[i] {
                let seq = seq as usize;
                while reached < seq {
                    reached += 1;
                    last[i][reached] = last[i][reached].max(at);
                }
            }
            for slot in last[i].iter_mut().skip(reached + 1) {
                *slot = u64::MAX;
            }
        }
        f.sent_to.push(sent_to);
    }
    for (i, s) in senders.iter().enumerate() {
        let receivers_of = receivers.iter().filter(|r| r.n != s.n).count() as u32;
        for seq in 1..s.at.len() {
            match last[i][seq] {
                u64::MAX => f.unreached += 1,
                at => f.to_last_ms.push(ms(at.saturating_sub(s.at[seq]))),
            }
            if exact[i][seq] == receivers_of {
                f.delivered_to_all += 1;
            }
        }
    }
    if first_sent != u64::MAX && last_receipt > 0 {
        f.span = Some((first_sent, last_receipt));
    }
    f
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u32, seq: u32, at: u64) -> Delivery {
        Delivery { n, seq, at }
    }

    #[test]
    fn a_skipped_update_is_reached_by_the_next_one_that_arrives() {
        // Sender 0 sends seq 1, 2, 3 at 0, 1000, 2000 µs.
        let at = [0, 0, 1000, 2000];
        let senders = [
            Sent { n: 0, at: &at },
            Sent { n: 1, at: &[0] },
            Sent { n: 2, at: &[0] },
        ];
        // Receiver 1 gets all three; receiver 2 gets 1 and 3 (2 coalesced).
        let r1 = [d(0, 1, 500), d(0, 2, 1500), d(0, 3, 2500)];
        let r2 = [d(0, 1, 700), d(0, 3, 2600)];
        let receivers = [
            Received {
                n: 1,
                deliveries: &r1,
            },
            Received {
                n: 2,
                deliveries: &r2,
            },
        ];
        let f = measure(&senders, &receivers);
        // seq 1: last receiver at 700; seq 2: receiver 2 had it (via 3) at
        // 2600, 1600 after its send; seq 3: 2600, 600 after.
        assert_eq!(f.to_last_ms, vec![0.7, 1.6, 0.6]);
        assert_eq!(f.unreached, 0);
        assert_eq!(f.delivered_to_all, 2);
        assert_eq!(f.sent, 3);
        assert_eq!(f.received, vec![3, 2]);
        assert_eq!(f.sent_to, vec![3, 3]);
        assert_eq!(f.receipt_ms, vec![0.5, 0.5, 0.5, 0.7, 0.6]);
        assert_eq!(f.span, Some((0, 2600)));
    }

    #[test]
    fn an_update_nobody_newer_reached_is_unreached() {
        let at = [0, 10, 20];
        let senders = [Sent { n: 0, at: &at }, Sent { n: 1, at: &[0] }];
        let r1 = [d(0, 1, 15)];
        let receivers = [
            Received {
                n: 0,
                deliveries: &[],
            },
            Received {
                n: 1,
                deliveries: &r1,
            },
        ];
        let f = measure(&senders, &receivers);
        assert_eq!(f.to_last_ms, vec![0.005]);
        assert_eq!(f.unreached, 1);
        assert_eq!(f.delivered_to_all, 1);
        // Receiver 0 is sent nothing: the only sender besides it sent none.
        assert_eq!(f.sent_to, vec![0, 2]);
    }

    #[test]
    fn a_late_older_receipt_does_not_make_a_view_fresher() {
        let at = [0, 0, 100];
        let senders = [Sent { n: 0, at: &at }, Sent { n: 1, at: &[0] }];
        // seq 2 arrives before seq 1 (out of order).
        let r1 = [d(0, 2, 150), d(0, 1, 300)];
        let receivers = [Received {
            n: 1,
            deliveries: &r1,
        }];
        let f = measure(&senders, &receivers);
        assert_eq!(f.to_last_ms, vec![0.15, 0.05]);
        assert_eq!(f.receipt_ms, vec![0.05]);
        assert_eq!(f.received, vec![1]);
    }

    #[test]
    fn a_repeated_state_is_not_another_receipt() {
        let at = [0, 0];
        let senders = [Sent { n: 0, at: &at }, Sent { n: 1, at: &[0] }];
        let r1 = [d(0, 1, 10), d(0, 1, 15_000)];
        let receivers = [Received {
            n: 1,
            deliveries: &r1,
        }];
        let f = measure(&senders, &receivers);
        assert_eq!(f.received, vec![1]);
        assert_eq!(f.receipt_ms, vec![0.01]);
        assert_eq!(f.delivered_to_all, 1);
    }
}
