/* fuzz_collector.c - fuzz target: the collector (tracer/collector.c) on a
 * region whose contents a traced program could have damaged: records of
 * any type, kind, sequence number, stack id and chunk fill level, a stack
 * trie with any parents and states.
 *
 * Each input makes a session directory with one region file, as the
 * preload library lays it out (lib/mt_shm.h) but with 1 to 4 chunks and a
 * trie of 1 to 256 slots, then runs the collector on it to the end
 * (tests/collector_fixture.h) with a child process that exits at once
 * (/bin/true) as the "program".  The collector must not crash; when it
 * finishes, every record of type event (either length) in the published
 * part of a chunk is an event row, and the database passes PRAGMA integrity_check.
 *
 * Input: byte 0: chunks - 1 (mod 4); byte 1: trie slots - 1; bytes 2-5:
 * nnodes (as published); byte 6: chunk states (2 bits each); then the trie
 * nodes (16 bytes each); the rest fills the chunks' record areas in order; each chunk's `used` is its share of the
 * bytes, or (state bit) anything from the next 8 bytes.  No modules (the
 * symbolizer would open the files they name).
 */
#define _GNU_SOURCE
#include "fuzz.h"
#include "../collector_fixture.h"

static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 7) return 0;
    uint32_t nchunks = data[0] % 4 + 1, slots = (uint32_t)data[1] + 1;
    uint32_t nnodes = le32(data + 2);
    uint8_t states = data[6];
    size_t o = 7;

    fixture_t fx;
    CHECK(fixture_open(&fx, "fuzz_collector", nchunks, slots) == 0);
    mt_region_t *r = fx.r;
    r->nnodes = nnodes;

    size_t k = slots * sizeof(mt_trie_slot_t);
    if (k > size - o) k = size - o;
    memcpy(mt_region_trie(r), data + o, k);
    o += k;

    /* the records, shared out over the chunks */
    size_t rest = size - o, share = (rest + nchunks - 1) / nchunks;
    long want_events = 0;
    for (uint32_t i = 0; i < nchunks; i++) {
        mt_chunk_t *ch = mt_region_chunk(r, i);
        size_t n = share < rest ? share : rest;
        if (n > MT_CHUNK_DATA) n = MT_CHUNK_DATA;
        memcpy(ch + 1, data + o, n);
        uint32_t st = (states >> (2 * (i % 4))) & 3;
        ch->state = st == 3 ? MT_CHUNK_OWNED : st; /* FREE, OWNED, FULL */
        ch->tid = (int32_t)fx.child + (int32_t)i;
        ch->used = n;
        if (st == 3 && n >= 8) memcpy(&ch->used, data + o, 8); /* any fill level at all */
        if (ch->state != MT_CHUNK_FREE) {
            /* records of either length, each whole inside the fill level */
            uint64_t used = ch->used > MT_CHUNK_DATA ? MT_CHUNK_DATA : ch->used;
            const uint8_t *rec = (const uint8_t *)(ch + 1);
            for (uint64_t pos = 0; pos + sizeof(mt_rec32_t) <= used && pos + mt_rec_len(rec[pos]) <= used;
                 pos += mt_rec_len(rec[pos]))
                want_events += rec[pos] == MT_REC_EVENT || rec[pos] == MT_REC_EV32;
        }
        o += n;
        rest -= n;
    }
    /* sequence numbers up to here are "taken" (the death marker uses it) */
    fx.session->seq = 1u << 20;
    fixture_publish(&fx);

    mt_collector_stats_t st;
    int rc = -1;
    CHECK(fixture_collect(&fx, &st, &rc) == 0);
    /* duplicate sequence numbers (possible only from a damaged target)
     * make sealing fail: an error, not a crash */
    if (rc == 0) {
        if (st.events != want_events) fprintf(stderr, "events %lld, records %ld\n", (long long)st.events, want_events);
        CHECK(st.events == want_events);
        char err[256];
        mt_db_t *db;
        CHECK(mt_db_open(fx.dbpath, MT_DB_READONLY, &db, err, sizeof err) == 0);
        mt_stmt_t *q;
        CHECK(mt_stmt_prepare(db, "PRAGMA integrity_check", &q) == 0 && mt_stmt_step(q) == 1);
        CHECK(strcmp(mt_stmt_text(q, 0), "ok") == 0);
        mt_stmt_finalize(q);
        CHECK(mt_stmt_prepare(db, "SELECT count(*) FROM event_data", &q) == 0 && mt_stmt_step(q) == 1);
        CHECK(mt_stmt_int(q, 0) == want_events);
        mt_stmt_finalize(q);
        mt_db_close(db);
    }
    fixture_close(&fx);
    return 0;
}
