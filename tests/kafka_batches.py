#!/usr/bin/python3
"""tests/kafka_batches.py OUTDIR — record batches built by an independent
Kafka encoder (kafka-python's DefaultRecordBatchBuilder, Debian's
python3-kafka, with python3-snappy, python3-lz4 and python3-zstandard for the
codecs), for tests/test_kafka_batches.c.

For each codec (none, gzip, snappy, lz4, zstd) it writes OUTDIR/CODEC.batch,
one batch as kafka-python builds it for a produce request, and
OUTDIR/CODEC.records, one line per record:
    OFFSET_DELTA TIMESTAMP_MS KEY VALUE HEADER_COUNT [HKEY HVALUE]...
with every byte string in hex, "-" for null and "=" for empty. The batch is
read back with kafka-python first: the encoder agrees with itself.
"""
import sys

from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

CODECS = [("none", 0), ("gzip", 1), ("snappy", 2), ("lz4", 3), ("zstd", 4)]


def hexed(b):
    if b is None:
        return "-"
    return b.hex() if len(b) > 0 else "="


def records(codec_id):
    """Keys null every 4th, values null every 6th and empty every 7th, 0..3
    headers (a null and an empty value among them), timestamps back and forth,
    and values long and repetitive enough that every codec compresses."""
    out = []
    for i in range(60):
        key = None if i % 4 == 0 else b"key-%d-%d" % (codec_id, i)
        if i % 6 == 0:
            value = None
        elif i % 7 == 0:
            value = b""
        else:
            value = (b"value %d of codec %d; " % (i, codec_id)) * (1 + i % 9) + bytes([i, 0, 255])
        headers = [("h%d" % k, None if (i + k) % 5 == 0 else b"v%d" % (i * k))
                   for k in range(i % 4)]
        if i % 11 == 3:
            headers.append(("empty", b""))
        ts = 1_700_000_000_000 + (i * 37 if i % 3 else -i)
        out.append((i, ts, key, value, headers))
    return out


def main():
    outdir = sys.argv[1]
    for name, codec_id in CODECS:
        b = DefaultRecordBatchBuilder(magic=2, compression_type=codec_id, is_transactional=False,
                                      producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                      batch_size=1 << 20)
        recs = records(codec_id)
        for i, ts, key, value, headers in recs:
            assert b.append(i, timestamp=ts, key=key, value=value, headers=headers) is not None
        data = bytes(b.build())
        batch = DefaultRecordBatch(data)
        assert batch.validate_crc() and batch.compression_type == codec_id
        assert [(r.offset, r.timestamp, r.key, r.value) for r in batch] == \
            [(i, ts, key, value) for i, ts, key, value, _ in recs]
        with open("%s/%s.batch" % (outdir, name), "wb") as f:
            f.write(data)
        with open("%s/%s.records" % (outdir, name), "w") as f:
            for i, ts, key, value, headers in recs:
                hs = " ".join("%s %s" % (hexed(k.encode()), hexed(v)) for k, v in headers)
                f.write("%d %d %s %s %d%s\n" % (i, ts, hexed(key), hexed(value), len(headers),
                                                " " + hs if hs else ""))


if __name__ == "__main__":
    main()
