/**
 * edgekit: typed IoT edge modules — inputs, outputs, routes, twins, direct methods and presence over pluggable
 * transports. This entry point is the core plus the in-process memory transport; `edgekit/mqtt`, `edgekit/amqp`,
 * `edgekit/protobuf`, `edgekit/routing` and `edgekit/testing` add the rest.
 *
 * @example
 * ```ts
 * import { connect, defineModule, json } from 'edgekit';
 * const Echo = defineModule({ inputs: { in: json<{ n: number }>() }, outputs: { out: json<{ n: number }>() } });
 * const client = await connect(Echo, { deviceId: 'dev1', moduleId: 'echo' });
 * await client.onInput('in', (msg) => client.send('out', msg.body).then(() => undefined));
 * ```
 * @packageDocumentation
 */
export { type Clock, type ClockTimer, systemClock } from './clock.js';
export { bytes, type Codec, type InferCodec, json, text } from './codecs/codec.js';
export { type InferSchema, type Schema, type StandardSchemaV1, typed } from './codecs/schema.js';
export {
  connect,
  ENVIRONMENT_VARIABLES,
  type EnvironmentTransportOptions,
  type FromEnvironmentOptions,
  fromEnvironment,
  type TransportFactory,
} from './connect.js';
export type { ClosableIterator } from './core/async.js';
export { MAX_METHOD_PAYLOAD_BYTES } from './core/client.js';
export {
  type DesiredOf,
  defineModule,
  type InputBody,
  type InputName,
  type MethodDefinition,
  type MethodName,
  type MethodRequest,
  type MethodResponse,
  type ModuleContract,
  type ModuleDefinition,
  method,
  type OutputBody,
  type OutputName,
  type ReportedOf,
  type UntypedModule,
  untypedModule,
} from './core/contract.js';
export {
  type DeadLetterInfo,
  type DeadLetterReason,
  decodeEnvelope,
  type Envelope,
  type EnvelopeHeader,
  MAX_MESSAGE_BYTES,
} from './core/envelope.js';
export { type JsonObject, MAX_TWIN_VERSION, TWIN_LIMITS, type TwinDocument } from './core/twin.js';
export type {
  ClientStats,
  CloseOptions,
  ConnectionStatus,
  ConnectOptions,
  DeadLetter,
  DesiredHandler,
  InboundMessage,
  InputHandler,
  InputOptions,
  InvokeOptions,
  MessageSource,
  MethodAnswer,
  MethodContext,
  MethodHandler,
  MethodResult,
  ModuleClient,
  ModuleRef,
  OfflineQueueOptions,
  OperationOptions,
  ReconnectOptions,
  Registration,
  SendOptions,
  SendResult,
  Twin,
  TwinPatch,
  TwinSection,
} from './core/types.js';
export type {
  DeploymentFailure,
  DeploymentRecord,
  DeploymentState,
  DeploymentStep,
  Presence,
} from './core/wire.js';
export {
  EdgeKitError,
  type EdgeKitErrorCode,
  type EdgeKitErrorOptions,
  isEdgeKitError,
  MethodError,
} from './errors.js';
export {
  checkIdentity,
  type Identity,
  MAX_NAME_LENGTH,
  moduleIdentity,
  OPERATOR,
  operatorIdentity,
  type ParsedIdentity,
  parseIdentity,
} from './names.js';
export { type AccessPlan, type PlanAccessOptions, type Principal, planAccess } from './service/access.js';
export {
  type CertificateAuthority,
  type CreateCertificateAuthorityOptions,
  type CreatedCertificateAuthority,
  type CreateRevocationListOptions,
  createCertificateAuthority,
  createRevocationList,
  type IssueClientCertificateOptions,
  type IssuedClientCertificate,
  type IssueServerCertificateOptions,
  issueClientCertificate,
  issueServerCertificate,
  type RevokedCertificate,
} from './service/certificates.js';
export {
  type ApplyDeploymentOptions,
  connectService,
  type DeploymentResult,
  type DeploymentStatus,
  type DeviceLink,
  type DevicesOptions,
  type InvalidDeploymentRecord,
  type ModuleStatus,
  type ModuleTwin,
  type RecordProblem,
  type ReplaceDesiredOptions,
  type ServiceClient,
  type ServiceClientOptions,
  type ServiceInvokeOptions,
  type TwinWatch,
  type UpdateDesiredOptions,
  type WatchOptions,
} from './service/client.js';
export { type Deployment, type DeploymentProblem, readDeployment } from './service/deployment.js';
export {
  emptyIdentityStore,
  type IdentityStore,
  type IssuedCertificate,
  type IssuedCredential,
  type IssueIdentitiesOptions,
  type IssueIdentitiesResult,
  issueIdentities,
  type PasswordHashes,
  principalsOf,
  readIdentityStore,
  type StoredCredential,
  withCertificate,
} from './service/identities.js';
export type {
  MessageFields,
  MessageMonitor,
  MonitorDestination,
  MonitorEvent,
  MonitoredMessage,
  MonitorFilter,
  MonitorKind,
  MonitorOptions,
  MonitorStats,
  UndecodableMessage,
} from './service/monitor.js';
export type { LinkState } from './service/operations.js';
export type {
  DeadLetterEntry,
  DeadLetterListing,
  DeadLetterMessage,
  DeadLetterOptions,
  DeadLetterQueue,
  PurgeResult,
  QueueMessage,
  ReplayResult,
  SkippedDeadLetter,
  UndecodableQueueMessage,
  UpstreamConsumer,
  UpstreamEvent,
  UpstreamOptions,
  UpstreamStats,
} from './service/queues.js';
export type {
  ConsumeOptions,
  Delivery,
  ObserveHandler,
  PublishOptions,
  RequestContext,
  RequestHandler,
  RequestOptions,
  Subscription,
  Transport,
  TransportCapabilities,
  TransportCloseOptions,
  TransportConnection,
  TransportConnectOptions,
} from './transport.js';
export {
  type BrokerEvent,
  defaultMemoryBroker,
  MemoryBroker,
  type MemoryBrokerOptions,
  type MemoryTransportOptions,
  memory,
} from './transports/memory/index.js';
export { SDK_VERSION } from './version.js';
