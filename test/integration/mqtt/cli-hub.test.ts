// `edgekit hub` driven by the operator CLI on a real Mosquitto.
import { cliHubScenario } from '../../hub/cli-scenario.js';
import { transportFor, useMosquitto } from './support/fixtures.js';

const broker = useMosquitto();
cliHubScenario({ name: 'Mosquitto', url: () => broker().url, transport: () => transportFor(broker().url) });
