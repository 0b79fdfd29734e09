/*
 * The AT <-> AP exchange of epay, as a Promela model checked with spin (tests/test_protocol_model.py,
 * docs/protocol-model.md). What is modelled, per the contract and epay's code:
 *
 *   AT (one process, the nightly steps in any order a scheduler and re-runs may give):
 *     build    puts every due item (no live instruction, not paid) in a new instruction (try + 1) and
 *              every unfiled instruction (its file rejected DT01, or released after FF01) in a new file;
 *     send     uploads each built file (NAME.part, then a rename that never replaces) and records it sent;
 *     receive  applies each ACK published (ACCP: presented; RJCT DT01: unfiled, re-filed by the next build;
 *              RJCT FF01: held until a data engineer releases it) and each RETR status (ACSC: settled, item
 *              paid; RJCT AM04: rejected, item due again for a new try; a status for an instruction already
 *              final is a repeat or an exception, never applied); then RELV, MNDT and the billing export;
 *     release  a data engineer releases a held file's instructions (they are re-filed);
 *   and a crash at every registered fault point (epay.faults.FAULT_POINTS, one FAULT(...) each below):
 *   what the step had not committed is lost, what it committed stays, and the step runs again later.
 *
 *   AP (one process): acknowledges each file that arrives (ACCP, or a file-level RJCT DT01 / FF01, a bounded
 *   number of times), executes each accepted instruction once (ACSC debits the account; RJCT AM04 does not;
 *   a reference already used in an earlier accepted file is AM05, nothing debited), publishes its status in
 *   a RETR, and may publish a RETR again (a re-delivery).
 *
 * Properties:
 *   - safety (assert at each debit): no reference is debited twice, and no item is debited twice (one item,
 *     several references over its tries: AT must never have two live presentations of one item);
 *   - eventually final (assert when the whole system can no longer move, spin's `timeout`): every instruction
 *     AP accepted is final in AT's ledger, with AP's status, and every status AP published was applied.
 *
 * The state is bounded: ITEMS items, MAX_TRY presentations each, MAX_REJECTS file rejections, MAX_CRASHES
 * crashes in a run; so every run ends, and spin explores all of them.
 */

#define ITEMS 2
#define MAX_TRY 2              /* written out for 2 below (DUE, the CAN_ guards) */
#define REFS 4                 /* ITEMS * MAX_TRY: reference r = item * MAX_TRY + try */
#define MAX_FILES 6
#define MAX_REJECTS 1
#define MAX_REDELIVERIES 1
#define MAX_CRASHES 2

#define none 0                 /* every mtype variable starts at 0: "not yet" */
mtype = { built, held, sent, presented, settled, rejected, accepted };

/* ---- AT's ledger: committed state only ---- */
mtype istate[REFS];            /* instruction state (none = not created) */
byte  ifile[REFS];             /* the file carrying it, 0 = unfiled */
bool  paid[ITEMS];             /* item paid by debit */
byte  files = 0;               /* files registered so far; file ids 1..files */
mtype fstate[MAX_FILES + 1];   /* none, built (registered), sent, accepted, rejected */
bool  revealed[MAX_FILES + 1]; /* the file is under its final name locally */
bool  ack_applied[MAX_FILES + 1];
bool  status_applied[REFS];

/* ---- files: what each carries (fixed when it is built), the SFTP server's /inbound ---- */
bool  in_file[(MAX_FILES + 1) * REFS];
bool  part[MAX_FILES + 1];     /* /inbound/NAME.part */
bool  arrived[MAX_FILES + 1];  /* /inbound/NAME: AP has it */

/* ---- AP ---- */
bool  acked[MAX_FILES + 1];
mtype ack[MAX_FILES + 1];      /* accepted, or a file-level rejection: rejected = DT01, held = FF01 */
byte  rejects = 0;
bool  used[REFS];              /* the reference was in an accepted file */
bool  due_at_ap[REFS];         /* accepted, to be executed */
mtype status[REFS];            /* none, settled (ACSC), rejected (RJCT AM04) */
bool  published[REFS];         /* its status is in a RETR on /outbound */
byte  redeliveries = 0;
byte  debits_of_item[ITEMS];

byte  crashes = 0;

/* A crash at a registered point, or not: what the step had not committed is lost; the process restarts. */
#define FAULT(point) if :: crashes < MAX_CRASHES -> crashes++; goto restart :: true -> skip fi

#define LIVE(r) (istate[r] == built || istate[r] == held || istate[r] == sent || istate[r] == presented)
#define DUE(i) (!paid[i] && !LIVE(i * 2) && !LIVE(i * 2 + 1) && istate[i * 2 + 1] == none)
/* A status applies to an instruction still open. Built counts (its file at AP, though the send that put it
   there crashed before recording it sent): otherwise its status would be taken for an exception and lost. */
#ifdef BUILT_NOT_OPEN
#define OPEN(r) (istate[r] == sent || istate[r] == presented)
#else
#define OPEN(r) (istate[r] == presented || istate[r] == sent || (istate[r] == built && ifile[r] != 0))
#endif
#define UNFILED(r) (istate[r] == built && ifile[r] == 0)
#define CAN_BUILD ((DUE(0) || DUE(1) || UNFILED(0) || UNFILED(1) || UNFILED(2) || UNFILED(3)) && \
                   files < MAX_FILES)
#define CAN_SEND (fstate[1] == built || fstate[2] == built || fstate[3] == built || \
                  fstate[4] == built || fstate[5] == built || fstate[6] == built)
#define ACK_WAITING(f) (acked[f] && !ack_applied[f])
#define STATUS_WAITING(r) (published[r] && !status_applied[r])
#define CAN_RECEIVE (ACK_WAITING(1) || ACK_WAITING(2) || ACK_WAITING(3) || ACK_WAITING(4) || \
                     ACK_WAITING(5) || ACK_WAITING(6) || STATUS_WAITING(0) || STATUS_WAITING(1) || \
                     STATUS_WAITING(2) || STATUS_WAITING(3))
#define CAN_RELEASE (istate[0] == held || istate[1] == held || istate[2] == held || istate[3] == held)

active proctype operator() {
    byte i, r, f;
restart:
end_operator:
    do
    :: CAN_BUILD ->                       /* build: one transaction */
        FAULT(build_after_write);        /* written in staging, not committed: all lost */
        atomic {
            i = 0;
            do
            :: i < ITEMS ->
                if
                :: DUE(i) -> r = (istate[i * 2] == none -> i * 2 : i * 2 + 1); istate[r] = built; ifile[r] = 0
                :: else -> skip
                fi;
                i++
            :: else -> break
            od;
            files++;
            fstate[files] = built;
            r = 0;
            do
            :: r < REFS ->
                if :: UNFILED(r) -> ifile[r] = files; in_file[files * REFS + r] = true :: else -> skip fi;
                r++
            :: else -> break
            od
        }
        FAULT(build_after_register);     /* committed, not revealed under its name */
        revealed[files] = true;
        FAULT(build_after_reveal)        /* revealed, staging not cleaned: harmless */
    :: CAN_SEND ->                        /* send every built file, oldest first */
        f = 1;
        do
        :: f <= files && fstate[f] != built -> f++
        :: f <= files && fstate[f] == built -> break
        od;
        revealed[f] = true;              /* a build that crashed after registering: the next run reveals */
        if
        :: !arrived[f] ->
            part[f] = true;
            FAULT(send_mid_part_write);
            FAULT(send_after_part_upload);
            atomic { part[f] = false; arrived[f] = true }   /* plain rename: never over a file */
            FAULT(send_after_rename)
        :: else -> skip                  /* already there with the same bytes: a re-send, nothing moves */
        fi;
        atomic {                         /* recorded sent: the file and its instructions */
            fstate[f] = sent;
            r = 0;
            do
            :: r < REFS -> if :: ifile[r] == f && istate[r] == built -> istate[r] = sent :: else -> skip fi; r++
            :: else -> break
            od
        }
        FAULT(send_after_record)
    :: CAN_RECEIVE ->                     /* ACKs first, then RETR, RELV, MNDT; then the billing export */
        f = 1;
        do
        :: f <= files ->
            if
            :: ACK_WAITING(f) ->
                FAULT(inbound_after_download);
                FAULT(ack_mid_apply);
                FAULT(ack_before_commit);
                atomic {
                    if
                    :: fstate[f] == built || fstate[f] == sent ->
                        fstate[f] = (ack[f] == accepted -> accepted : rejected);
                        r = 0;
                        do
                        :: r < REFS ->
                            if
                            :: ifile[r] == f && (istate[r] == built || istate[r] == sent) ->
                                if
                                :: ack[f] == accepted -> istate[r] = presented
                                :: ack[f] == rejected -> istate[r] = built; ifile[r] = 0   /* DT01: re-filed */
                                :: ack[f] == held -> istate[r] = held                      /* FF01: held */
                                fi
                            :: else -> skip
                            fi;
                            r++
                        :: else -> break
                        od
                    :: else -> skip      /* a second ACK: an incident, never applied over the first */
                    fi;
                    ack_applied[f] = true
                }
                FAULT(ack_after_commit)
            :: else -> skip
            fi;
            f++
        :: else -> break
        od;
        r = 0;
        do
        :: r < REFS ->
            if
            :: STATUS_WAITING(r) ->
                FAULT(inbound_after_download);
                FAULT(retr_mid_apply);
                FAULT(retr_before_commit);
                atomic {
                    if
                    :: OPEN(r) ->
                        istate[r] = status[r];
                        if
                        :: status[r] == settled -> assert(!paid[r / 2]); paid[r / 2] = true
                        :: else -> skip  /* AM04: the item is due again, a new try */
                        fi
                    :: else -> skip      /* a repeat, or an exception: never applied over a final state */
                    fi;
                    status_applied[r] = true
                }
                FAULT(retr_after_commit)
            :: else -> skip
            fi;
            r++
        :: else -> break
        od;
        FAULT(mndt_before_commit);       /* MNDT, RELV: registered for finance; no state of the properties */
        FAULT(mndt_after_commit);
        FAULT(relv_before_commit);
        FAULT(relv_after_commit);
        FAULT(export_after_part);        /* the billing export: part written, then registered */
        FAULT(export_after_commit)
    :: CAN_RELEASE ->                     /* a data engineer releases what FF01 held */
        atomic {
            r = 0;
            do
            :: r < REFS -> if :: istate[r] == held -> istate[r] = built; ifile[r] = 0 :: else -> skip fi; r++
            :: else -> break
            od
        }
    od
}

#define AP_CAN_ACK (arrived[1] && !acked[1] || arrived[2] && !acked[2] || arrived[3] && !acked[3] || \
                    arrived[4] && !acked[4] || arrived[5] && !acked[5] || arrived[6] && !acked[6])
#define AP_CAN_EXECUTE (due_at_ap[0] || due_at_ap[1] || due_at_ap[2] || due_at_ap[3])
#define AP_CAN_REDELIVER (redeliveries < MAX_REDELIVERIES && \
                          (published[0] || published[1] || published[2] || published[3]))

active proctype poste() {
    byte f, r;
end_poste:
    do
    :: AP_CAN_ACK ->
        f = 1;
        do
        :: f <= MAX_FILES && !(arrived[f] && !acked[f]) -> f++
        :: f <= MAX_FILES && arrived[f] && !acked[f] -> break
        od;
        atomic {
            if
            :: ack[f] = accepted
            :: rejects < MAX_REJECTS -> rejects++; ack[f] = rejected
            :: rejects < MAX_REJECTS -> rejects++; ack[f] = held
            fi;
            acked[f] = true;
            if
            :: ack[f] == accepted ->
                r = 0;
                do
                :: r < REFS ->
                    if
                    :: in_file[f * REFS + r] ->
                        assert(!used[r]);          /* a reference is never in two accepted files */
                        used[r] = true; due_at_ap[r] = true
                    :: else -> skip
                    fi;
                    r++
                :: else -> break
                od
            :: else -> skip
            fi
        }
    :: AP_CAN_EXECUTE ->
        r = 0;
        do
        :: r < REFS && !due_at_ap[r] -> r++
        :: r < REFS && due_at_ap[r] -> break
        od;
        atomic {
            if
            :: status[r] = settled;
               assert(debits_of_item[r / 2] == 0);   /* an item is never debited twice */
               debits_of_item[r / 2]++
            :: status[r] = rejected                   /* AM04, nothing debited */
            fi;
            due_at_ap[r] = false;
            published[r] = true
        }
    :: AP_CAN_REDELIVER ->                            /* a RETR published again under a new name */
        atomic {
            redeliveries++;
            if
            :: published[0] -> status_applied[0] = false
            :: published[1] -> status_applied[1] = false
            :: published[2] -> status_applied[2] = false
            :: published[3] -> status_applied[3] = false
            fi
        }
    od
}

/* When nothing can move any more (every run ends: everything is bounded), every instruction AP accepted
   is final in AT's ledger with AP's status, and every status AP published was applied. */
active proctype eventually() {
    byte r;
    timeout ->
    r = 0;
    do
    :: r < REFS ->
        assert(!used[r] || (status[r] != none && istate[r] == status[r]));
        assert(!published[r] || status_applied[r]);
        r++
    :: else -> break
    od
}
