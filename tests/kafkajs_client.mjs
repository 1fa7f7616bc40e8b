// tests/kafkajs_client.mjs COMMAND --brokers HOST:PORT[,HOST:PORT...] [options]
//
// KafkaJS (npm, pinned in tests/kafkajs/package-lock.json) as a command-line
// program, so that the Python harnesses (tests/kafka_clients.py,
// tests/kafka_group_clients.py) drive it as they drive the other clients and
// keep one set of checks. Records travel as JSON lines, bytes as hex:
//   {"partition", "offset", "key", "value", "headers": [[name, hex]...], "ts"}
// (key and value null when absent; what is read also has "producer_id", its
// batch's, -1 for none). Commands:
//
//   codecs                     the compression codecs offered, one line of JSON
//   produce --topic T --codec C [--rounds]
//                              sends the records read on stdin (partition, key,
//                              value, headers, ts: the producer's clock when
//                              absent), idempotent with acks=-1, in
//                              order, one batch per partition; prints
//                              {"produced": N}. With --rounds, an empty line
//                              ends a round: each is sent, and acknowledged,
//                              before its {"produced": N} (its N) and the
//                              next, all by one producer, which follows
//                              leader changes by itself
//   metadata --topic T         {"brokers": [[id, host, port]...],
//                              "partitions": [[p, leader]...]}: what
//                              Metadata lists
//   consume --topic T [--group G] [--offset O] [--commit]
//                              reads every partition of T, from offset O on
//                              each, or else from G's committed offsets (the
//                              beginning where it has none; a new group
//                              without G), up to the end offsets seen at the
//                              start; prints the records in offset order per
//                              partition; commits those end offsets with
//                              --commit
//   offsets --topic T [--time TS]
//                              {"earliest": [..], "latest": [..], "at": [..]}
//                              per partition; "at" is the first offset with a
//                              timestamp >= TS (the end offset if none)
//   reset --topic T --group G
//                              resets the group's committed offsets (it has
//                              no members) to the earliest (KafkaJS commits
//                              -2 for that)
//   create --topic T --partitions N [--config NAME=VALUE]...
//   describe --topic T         the topic's configs as one JSON object
//   delete --topic T
//   topics                     the topic names, one JSON list
//   member --topic T --group G --name N
//                              a group member: prints {"assigned": [p...]} at
//                              each join, each record it reads; reads commands
//                              on stdin: "commit" (the offsets after what it
//                              read; answers {"committed": true}), "close"
//                              (leaves the group; answers {"closed": true})
//
// $KAFKAJS_MODULES is the node_modules directory holding kafkajs (./dev.sh
// installs it; tests/meson.build names it). KafkaJS logs go to stderr, at
// $KAFKAJS_LOG_LEVEL (ERROR by default: NOTHING, ERROR, WARN, INFO, DEBUG).
// Exits 1 with a message on stderr on any error.
import { createRequire } from 'node:module'
import path from 'node:path'
import readline from 'node:readline'

const modules = process.env.KAFKAJS_MODULES
if (!modules) {
  die('KAFKAJS_MODULES is not set (the node_modules directory holding kafkajs)')
}
const require = createRequire(path.join(path.resolve(modules), 'nagare.cjs'))
const { Kafka, CompressionTypes, CompressionCodecs, ConfigResourceTypes, logLevel } =
  require('kafkajs')

// Every codec KafkaJS offers here: GZIP is built in, Snappy is the pure-JS
// plug-in (kafkajs-snappy); LZ4 and ZStandard have only native plug-ins.
const CODECS = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP }
CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy')
CODECS.snappy = CompressionTypes.Snappy

function die(msg) {
  process.stderr.write('kafkajs_client: ' + msg + '\n')
  process.exit(1)
}

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

const FLAGS = ['commit', 'rounds']

function parseArgs(argv) {
  const opts = { config: [] }
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].replace(/^--/, '')
    if (FLAGS.includes(name)) {
      opts[name] = true
    } else if (!argv[i].startsWith('--') || i + 1 >= argv.length) {
      die('bad option ' + argv[i])
    } else if (name === 'config') {
      opts.config.push(argv[++i])
    } else {
      opts[name] = argv[++i]
    }
  }
  return opts
}

function need(opts, ...names) {
  for (const n of names) {
    if (opts[n] === undefined) {
      die('--' + n + ' is required')
    }
  }
}

function client(opts) {
  need(opts, 'brokers')
  const level = logLevel[process.env.KAFKAJS_LOG_LEVEL || 'ERROR']
  const names = Object.fromEntries(Object.entries(logLevel).map(([n, l]) => [l, n]))
  return new Kafka({
    clientId: 'nagare-kafkajs-' + (opts.name || process.pid),
    brokers: opts.brokers.split(','),
    logLevel: level,
    logCreator: () => ({ namespace, level: l, log }) => {
      process.stderr.write(`[${namespace}] ${names[l]} ${JSON.stringify(log)}\n`)
    },
  })
}

const hex = b => (b === null || b === undefined ? null : Buffer.from(b).toString('hex'))
const unhex = h => (h === null || h === undefined ? null : Buffer.from(h, 'hex'))

// KafkaJS gives headers as an object, a name sent twice as an array.
function headerList(headers) {
  const list = []
  for (const [name, v] of Object.entries(headers || {})) {
    for (const one of Array.isArray(v) ? v : [v]) {
      list.push([name, hex(one)])
    }
  }
  return list
}

function recordOut(partition, m) {
  return {
    partition,
    offset: Number(m.offset),
    key: hex(m.key),
    value: hex(m.value),
    headers: headerList(m.headers),
    ts: Number(m.timestamp),
    producer_id: Number(m.batchContext.producerId),
  }
}

// The records read on stdin (see produce) as KafkaJS messages, by partition.
function messagesByPartition(recs) {
  const byPartition = new Map()
  for (const r of recs) {
    const headers = {}
    for (const [name, v] of r.headers || []) {
      if (name in headers) {
        die('header ' + name + ' twice in one record: KafkaJS sends an object')
      }
      headers[name] = unhex(v)
    }
    const msgs = byPartition.get(r.partition) || []
    const m = { key: unhex(r.key), value: unhex(r.value), headers }
    if (r.ts !== undefined) {
      m.timestamp = String(r.ts)
    }
    msgs.push(m)
    byPartition.set(r.partition, msgs)
  }
  return byPartition
}

async function sendRound(producer, opts, recs) {
  for (const [partition, msgs] of messagesByPartition(recs)) {
    const sent = await producer.send({
      topic: opts.topic,
      acks: -1,
      compression: CODECS[opts.codec],
      messages: msgs.map(m => ({ ...m, partition })),
    })
    for (const s of sent) {
      if (s.errorCode !== 0) {
        die('produce: ' + JSON.stringify(s))
      }
    }
  }
  out({ produced: recs.length })
}

// Retries of rounds, which follow a leader change: a leader stopped or
// killed is replaced within seconds (a kill waits out the broker's lease),
// looked for every second at most, rather than KafkaJS's 30 s; as many as
// the idempotent producer's default.
const ROUNDS_RETRY = {
  retries: Number.MAX_SAFE_INTEGER,
  initialRetryTime: 100,
  maxRetryTime: 1000,
}

async function produce(opts) {
  need(opts, 'topic', 'codec')
  if (!(opts.codec in CODECS)) {
    die('codec ' + opts.codec + ' is not one of ' + Object.keys(CODECS))
  }
  const producer = client(opts).producer({
    idempotent: true,
    maxInFlightRequests: 1,
    retry: opts.rounds ? ROUNDS_RETRY : undefined,
  })
  await producer.connect()
  let round = []
  for await (const line of readline.createInterface({ input: process.stdin })) {
    if (line.trim()) {
      round.push(JSON.parse(line))
    } else if (opts.rounds) {
      await sendRound(producer, opts, round)
      round = []
    }
  }
  if (!opts.rounds || round.length > 0) {
    await sendRound(producer, opts, round)
  }
  await producer.disconnect()
}

async function withAdmin(opts, fn) {
  const admin = client(opts).admin()
  await admin.connect()
  const res = await fn(admin)
  await admin.disconnect()
  return res
}

// The topic's offsets, sorted by partition: [{partition, low, high}].
async function topicOffsets(admin, topic) {
  const ends = await admin.fetchTopicOffsets(topic)
  return ends
    .map(e => ({ partition: e.partition, low: Number(e.low), high: Number(e.high) }))
    .sort((a, b) => a.partition - b.partition)
}

// Where consume starts on each partition of topic and where it stops (the
// end offsets now): Maps by partition.
async function consumeRange(opts, groupId) {
  return withAdmin(opts, async admin => {
    const from = new Map()
    const high = new Map()
    for (const e of await topicOffsets(admin, opts.topic)) {
      from.set(e.partition, Number(opts.offset ?? e.low))
      high.set(e.partition, e.high)
    }
    if (opts.group !== undefined && opts.offset === undefined) {
      const [committed] = await admin.fetchOffsets({ groupId, topics: [opts.topic] })
      for (const c of committed.partitions.filter(c => Number(c.offset) >= 0)) {
        from.set(c.partition, Number(c.offset))
      }
    }
    return { from, high }
  })
}

async function consume(opts) {
  need(opts, 'topic')
  const groupId = opts.group || 'kafkajs-consume-' + process.pid
  const { from, high } = await consumeRange(opts, groupId)
  const left = new Set([...from].filter(([p, o]) => o < high.get(p)).map(([p]) => p))
  const read = [...left]
  const got = new Map([...high.keys()].map(p => [p, []]))
  if (left.size > 0) {
    // disconnect() waits for the fetch in flight: a long poll of 1 s at most.
    const consumer = client(opts).consumer({ groupId, maxWaitTimeInMs: 1000 })
    await consumer.connect()
    await consumer.subscribe({ topic: opts.topic, fromBeginning: true })
    let done
    const finished = new Promise(resolve => (done = resolve))
    consumer.on(consumer.events.CRASH, e => die('consumer crashed: ' + e.payload.error.stack))
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        if (!left.has(partition)) {
          return
        }
        got.get(partition).push(recordOut(partition, message))
        if (Number(message.offset) + 1 >= high.get(partition)) {
          left.delete(partition)
          if (left.size === 0) {
            done()
          }
        }
      },
    })
    // Before the first fetch: KafkaJS fetches from a seek's offset.
    if (opts.offset !== undefined) {
      for (const partition of read) {
        consumer.seek({ topic: opts.topic, partition, offset: opts.offset })
      }
    }
    await finished
    if (opts.commit) {
      const ends = read.map(partition => ({
        topic: opts.topic,
        partition,
        offset: String(high.get(partition)),
      }))
      await consumer.commitOffsets(ends)
    }
    await consumer.disconnect()
  }
  for (const p of [...got.keys()].sort((a, b) => a - b)) {
    got.get(p).forEach(out)
  }
}

async function offsets(opts) {
  need(opts, 'topic')
  await withAdmin(opts, async admin => {
    const ends = await topicOffsets(admin, opts.topic)
    const res = { earliest: ends.map(e => e.low), latest: ends.map(e => e.high) }
    if (opts.time !== undefined) {
      const at = await admin.fetchTopicOffsetsByTimestamp(opts.topic, Number(opts.time))
      res.at = at.sort((a, b) => a.partition - b.partition).map(e => Number(e.offset))
    }
    out(res)
  })
}

async function reset(opts) {
  need(opts, 'topic', 'group')
  await withAdmin(opts, admin =>
    admin.resetOffsets({ groupId: opts.group, topic: opts.topic, earliest: true })
  )
  out({ reset: opts.group })
}

async function create(opts) {
  need(opts, 'topic', 'partitions')
  const configEntries = opts.config.map(c => {
    const eq = c.indexOf('=')
    return { name: c.slice(0, eq), value: c.slice(eq + 1) }
  })
  await withAdmin(opts, async admin => {
    const created = await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic: opts.topic, numPartitions: Number(opts.partitions), configEntries }],
    })
    if (!created) {
      die('createTopics: ' + opts.topic + ' already exists')
    }
    const md = await admin.fetchTopicMetadata({ topics: [opts.topic] })
    out({ created: opts.topic, partitions: md.topics[0].partitions.length })
  })
}

async function describe(opts) {
  need(opts, 'topic')
  await withAdmin(opts, async admin => {
    const res = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: opts.topic }],
    })
    const r = res.resources[0]
    if (r.errorCode !== 0) {
      die('describeConfigs: ' + JSON.stringify(r))
    }
    out(Object.fromEntries(r.configEntries.map(e => [e.configName, e.configValue])))
  })
}

async function del(opts) {
  need(opts, 'topic')
  await withAdmin(opts, admin => admin.deleteTopics({ topics: [opts.topic] }))
  out({ deleted: opts.topic })
}

async function topics(opts) {
  await withAdmin(opts, async admin => out(await admin.listTopics()))
}

async function metadata(opts) {
  need(opts, 'topic')
  await withAdmin(opts, async admin => {
    const cluster = await admin.describeCluster()
    const md = await admin.fetchTopicMetadata({ topics: [opts.topic] })
    out({
      brokers: cluster.brokers.map(b => [b.nodeId, b.host, b.port]),
      partitions: md.topics[0].partitions.map(p => [p.partitionId, p.leader]),
    })
  })
}

// A group member driven through stdin and stdout (see the top).
async function member(opts) {
  need(opts, 'topic', 'group', 'name')
  // A fetch waits at most 1 s, and the member heartbeats every second:
  // disconnect waits for the fetch in flight, and the member hears of a
  // rebalance from a heartbeat, sent between fetches.
  const consumer = client(opts).consumer({
    groupId: opts.group,
    sessionTimeout: 10000,
    heartbeatInterval: 1000,
    maxWaitTimeInMs: 1000,
  })
  const next = new Map()
  consumer.on(consumer.events.GROUP_JOIN, e => {
    const mine = e.payload.memberAssignment[opts.topic] || []
    out({ assigned: [...mine].sort((a, b) => a - b) })
  })
  consumer.on(consumer.events.CRASH, e => die('member crashed: ' + e.payload.error.stack))
  await consumer.connect()
  await consumer.subscribe({ topic: opts.topic, fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      out(recordOut(partition, message))
      next.set(partition, Number(message.offset) + 1)
    },
  })
  const commands = readline.createInterface({ input: process.stdin })
  for await (const line of commands) {
    if (line === 'commit') {
      const read = [...next].map(([partition, o]) => ({
        topic: opts.topic,
        partition,
        offset: String(o),
      }))
      await consumer.commitOffsets(read)
      out({ committed: true })
    } else if (line === 'close') {
      break
    } else if (line) {
      die('member: unknown command ' + line)
    }
  }
  // Without stdin, which would keep node running until the other end closes it.
  process.stdin.destroy()
  await consumer.disconnect()
  out({ closed: true })
}

const COMMANDS = {
  codecs: async () => out(Object.keys(CODECS)),
  produce,
  consume,
  offsets,
  reset,
  create,
  describe,
  delete: del,
  topics,
  metadata,
  member,
}

const [cmd, ...rest] = process.argv.slice(2)
if (!(cmd in COMMANDS)) {
  const names = Object.keys(COMMANDS).join('|')
  die('usage: kafkajs_client.mjs ' + names + ' --brokers HOST:PORT[,...] ...')
}
try {
  await COMMANDS[cmd](parseArgs(rest))
} catch (e) {
  die(cmd + ': ' + (e.stack || e))
}
