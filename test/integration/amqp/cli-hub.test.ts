// `edgekit hub` driven by the operator CLI on a real RabbitMQ (the CLI's default AMQP prefix, unique device ids).
import { amqp } from '../../../src/transports/amqp/index.js';
import { cliHubScenario } from '../../hub/cli-scenario.js';
import { sharedRabbitMQ } from './support.js';

cliHubScenario({
  name: 'RabbitMQ',
  url: () => sharedRabbitMQ().url,
  transport: () => amqp({ url: sharedRabbitMQ().url }),
});
