// azure-alert-counter: an Azure IoT Edge module written on Microsoft's device SDK (azure-iot-device with the MQTT
// transport), using its public API only. It runs unchanged under Azure IoT Edge's edgeHub and under `edgekit hub`.
//
// It takes the filter's temperature alerts on its input `alerts`, counts them and keeps the highest machine
// temperature seen. Every `SummaryEvery` alerts (a desired property, default 5) it sends a summary on its output
// `summary` (application property kind=summary) and reports { alertsSeen, maxTemperature, SummaryEvery } as reported
// properties. Direct methods: `getSummary` answers the counts, `resetSummary` starts counting afresh.
//
// Configured by its environment as IoT Edge configures every module: the IOTEDGE_* variables and the workload API,
// or EdgeHubConnectionString (+ EdgeModuleCACertificateFile) for local runs.
'use strict';

const { ModuleClient, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const NAME = 'azure-alert-counter';
const DEFAULT_SUMMARY_EVERY = 5;

const log = (text) => console.log(`[${NAME}] ${text}`);
const fail = (text) => console.error(`[${NAME}] ${text}`);
const reason = (error) => error?.message || String(error);

const counter = {
  summaryEvery: DEFAULT_SUMMARY_EVERY,
  alertsSeen: 0,
  maxTemperature: null,
  sinceSummary: 0,
};

let client;
let twin;
let stopping = false;
let reporting = Promise.resolve();

/** The machine temperature of a reading as the filter forwards it ({ machine: { temperature }, ... }), if any. */
function temperatureOf(message) {
  let reading;
  try {
    reading = JSON.parse(message.getBytes().toString('utf8'));
  } catch {
    return undefined;
  }
  const temperature = reading?.machine?.temperature;
  return typeof temperature === 'number' && Number.isFinite(temperature) ? temperature : undefined;
}

/**
 * Reports { alertsSeen, maxTemperature, SummaryEvery } as they are when the previous report is done: reports go one
 * after the other, so the last one always carries the latest counts.
 */
function reportCounts() {
  reporting = reporting.then(
    () =>
      new Promise((resolve) => {
        if (!twin || stopping) return resolve();
        const patch = {
          alertsSeen: counter.alertsSeen,
          maxTemperature: counter.maxTemperature,
          SummaryEvery: counter.summaryEvery,
        };
        twin.properties.reported.update(patch, (error) => {
          if (error && !stopping) fail(`could not report properties: ${reason(error)}`);
          resolve();
        });
      }),
  );
  return reporting;
}

async function sendSummary() {
  const summary = {
    alertsSeen: counter.alertsSeen,
    maxTemperature: counter.maxTemperature,
    SummaryEvery: counter.summaryEvery,
    timeCreated: new Date().toISOString(),
  };
  const message = new Message(JSON.stringify(summary));
  message.contentType = 'application/json';
  message.contentEncoding = 'utf-8';
  message.properties.add('kind', 'summary');
  try {
    await client.sendOutputEvent('summary', message);
    log(`summary sent: ${summary.alertsSeen} alerts, highest ${summary.maxTemperature} °C`);
  } catch (error) {
    if (!stopping) fail(`could not send the summary: ${reason(error)}`);
  }
  await reportCounts();
}

function onInput(inputName, message) {
  client.complete(message, (error) => {
    if (error && !stopping) fail(`could not complete a message: ${reason(error)}`);
  });
  if (inputName !== 'alerts') {
    log(`ignored a message on input ${inputName}`);
    return;
  }
  const temperature = temperatureOf(message);
  if (temperature === undefined) {
    log('skipped an alert without a machine temperature');
    return;
  }
  counter.alertsSeen += 1;
  counter.sinceSummary += 1;
  if (counter.maxTemperature === null || temperature > counter.maxTemperature) counter.maxTemperature = temperature;
  log(`alert ${counter.alertsSeen}: ${temperature} °C`);
  if (counter.sinceSummary >= counter.summaryEvery) {
    counter.sinceSummary = 0;
    void sendSummary();
  }
}

/**
 * Applies `SummaryEvery` from the desired properties: the listener hears the whole desired document first, then each
 * patch (the same value may come more than once).
 */
function onDesired(desired) {
  if (!desired || !Object.hasOwn(desired, 'SummaryEvery')) return;
  const value = desired.SummaryEvery;
  let summaryEvery;
  if (value === null) {
    summaryEvery = DEFAULT_SUMMARY_EVERY;
  } else if (Number.isInteger(value) && value >= 1 && value <= 10_000) {
    summaryEvery = value;
  } else {
    log(`ignored desired SummaryEvery ${JSON.stringify(value)}: it must be an integer from 1 to 10000`);
    void reportCounts();
    return;
  }
  if (summaryEvery === counter.summaryEvery) return;
  counter.summaryEvery = summaryEvery;
  log(`SummaryEvery set to ${summaryEvery}`);
  void reportCounts();
}

function getSummary(_request, response) {
  log('getSummary called');
  response.send(200, { alertsSeen: counter.alertsSeen, maxTemperature: counter.maxTemperature }, (error) => {
    if (error && !stopping) fail(`could not answer getSummary: ${reason(error)}`);
  });
}

function resetSummary(_request, response) {
  const previous = { alertsSeen: counter.alertsSeen, maxTemperature: counter.maxTemperature };
  counter.alertsSeen = 0;
  counter.maxTemperature = null;
  counter.sinceSummary = 0;
  log(`summary reset (was ${previous.alertsSeen} alerts)`);
  response.send(200, { reset: true, previous }, (error) => {
    if (error && !stopping) fail(`could not answer resetSummary: ${reason(error)}`);
  });
  void reportCounts();
}

async function stop(signal) {
  if (stopping) return;
  stopping = true;
  log(`${signal} received, closing`);
  try {
    if (client) await client.close();
  } catch (error) {
    fail(`close failed: ${reason(error)}`);
    process.exit(1);
  }
  log('stopped');
  process.exit(0);
}

async function main() {
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));

  client = await ModuleClient.fromEnvironment(Mqtt);
  client.on('error', (error) => {
    if (!stopping) fail(`client error: ${reason(error)}`);
  });
  // Emitted when the SDK gives up reconnecting: end, so the runtime restarts the module.
  client.on('disconnect', () => {
    if (stopping) return;
    fail('disconnected from the hub for good; exiting');
    process.exit(1);
  });
  await client.open();
  if (stopping) return;
  log('connected');

  twin = await client.getTwin();
  twin.on('error', (error) => {
    if (!stopping) fail(`twin error: ${reason(error)}`);
  });
  twin.on('properties.desired', onDesired);
  client.onMethod('getSummary', getSummary);
  client.onMethod('resetSummary', resetSummary);
  client.on('inputMessage', onInput);
  await reportCounts();
  log(`ready: a summary every ${counter.summaryEvery} alerts`);
}

main().catch((error) => {
  if (stopping) return; // a signal during start: stop() ends the process
  fail(`could not start: ${reason(error)}`);
  process.exit(1);
});
