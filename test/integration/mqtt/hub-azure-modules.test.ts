// The hub scenarios on a real Mosquitto: the Azure modules' sessions are edgekit clients of the broker.
import { hubScenarios } from '../../hub/scenarios.js';
import { transportFor, useMosquitto } from './support/fixtures.js';

const broker = useMosquitto();
hubScenarios({ name: 'Mosquitto', transport: () => transportFor(broker().url) });
