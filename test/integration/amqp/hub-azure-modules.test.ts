// The hub scenarios on a real RabbitMQ: the Azure modules' sessions are edgekit clients of the broker.
import { amqp } from '../../../src/transports/amqp/index.js';
import { hubScenarios } from '../../hub/scenarios.js';
import { sharedRabbitMQ, uniquePrefix } from './support.js';

const prefix = uniquePrefix();
hubScenarios({ name: 'RabbitMQ', transport: () => amqp({ url: sharedRabbitMQ().url, prefix }) });
