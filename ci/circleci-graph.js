#!/usr/bin/env node
// Parses a .circleci/config.yml with CircleCI's own config parser
// (@circleci/circleci-config-parser, ci/npm) and prints its graph as JSON:
// each job's steps (the commands they run, expanded reusable commands
// included), and each workflow's jobs with what they require, their
// type (approval), contexts and branch filters, and the workflow's
// schedule. The pipeline tests assert on this (internal/scaffold).
//
//   node ci/circleci-graph.js CONFIG   (NODE_PATH: the node_modules of ci/npm.sh)
'use strict';
const fs = require('fs');
const yaml = require('yaml');
const parser = require('@circleci/circleci-config-parser');

const file = process.argv[2];
if (!file) {
  console.error('usage: circleci-graph.js CONFIG');
  process.exit(2);
}
let doc, config;
try {
  doc = yaml.parse(fs.readFileSync(file, 'utf8'));
  config = parser.parseConfig(doc); // throws on anything the schema refuses
} catch (e) {
  console.error(`${file}: ${String(e && e.message ? e.message : e).split('\n')[0].slice(0, 500)}`);
  process.exit(1);
}

// The commands a job runs, with reusable commands expanded as CircleCI
// would: their parsed steps, with << parameters.x >> replaced by the
// call's arguments or the parameters' defaults.
const commands = new Map((config.commands || []).map((c) => [c.name, c]));
function runs(steps, args, seen) {
  const subst = (text) => String(text).replace(/<<\s*parameters\.([A-Za-z0-9_-]+)\s*>>/g, (m, k) => (k in args ? String(args[k]) : m));
  const out = [];
  for (const step of steps || []) {
    const name = String(step.name);
    const params = step.parameters || {};
    const reused = commands.get(name);
    if (name === 'run') {
      out.push(subst(typeof params === 'string' ? params : params.command));
    } else if (reused && !seen.has(name)) {
      const defaults = {};
      const declared = ((doc.commands || {})[name] || {}).parameters || {};
      for (const [k, v] of Object.entries(declared)) if (v && 'default' in v) defaults[k] = v.default;
      out.push(...runs(reused.steps, { ...defaults, ...params }, new Set([...seen, name])));
    } else {
      out.push(name + (Object.keys(params).length ? ' ' + JSON.stringify(params) : ''));
    }
  }
  return out;
}

const jobs = {};
for (const job of config.jobs) {
  jobs[job.name] = { runs: runs(job.steps, {}, new Set()) };
}
const workflows = {};
for (const wf of config.workflows) {
  const entry = { jobs: {} };
  for (const wj of wf.jobs) {
    const p = wj.parameters || {};
    entry.jobs[p.name || wj.name] = {
      job: wj.job ? wj.job.name : wj.name,
      type: p.type || 'build',
      requires: p.requires || [],
      context: p.context || [],
      filters: p.filters || null,
    };
  }
  workflows[wf.name] = entry;
}
// Schedules, from the file as parsed: the SDK's workflow keeps them under
// triggers, which not every version exposes.
for (const [name, wf] of Object.entries(doc.workflows || {})) {
  if (workflows[name] && wf && wf.triggers) workflows[name].triggers = wf.triggers;
}
process.stdout.write(JSON.stringify({ jobs, workflows }, null, 2) + '\n');
