// A Node.js client built from the .proto files alone (no generated code): calls a quantmesh ClassifierService's
// standard health and reflection services and Classify, then prints what it saw as one JSON object.
// Usage: node tests/interop/node_client.js HOST:PORT
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const root = path.resolve(__dirname, '..', '..');
const address = process.argv[2];
const loadOptions = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

function load(file, includeDirs) {
  return grpc.loadPackageDefinition(protoLoader.loadSync(file, { ...loadOptions, includeDirs }));
}

const health = load(path.join(root, 'node_modules/grpc-health-check/proto/health/v1/health.proto'), []);
const reflection = load(
  path.join(root, 'node_modules/@grpc/reflection/build/proto/grpc/reflection/v1alpha/reflection.proto'), []);
const classifier = load('quantmesh/classifier/v1/classifier.proto', [path.join(root, 'protos')]);

const credentials = grpc.credentials.createInsecure();
const deadline = () => new Date(Date.now() + 5000);

function unary(client, method, request) {
  return new Promise((resolve) => {
    client[method](request, { deadline: deadline() }, (error, response) => {
      resolve(error ? { code: grpc.status[error.code], details: error.details } : { response });
    });
  });
}

function listServices() {
  const client = new reflection.grpc.reflection.v1alpha.ServerReflection(address, credentials);
  return new Promise((resolve, reject) => {
    const call = client.ServerReflectionInfo({ deadline: deadline() });
    call.on('data', (message) => {
      resolve(message.list_services_response.service.map((s) => s.name).sort());
      call.end();
    });
    call.on('error', reject);
    call.write({ list_services: '' });
  });
}

async function main() {
  const healthClient = new health.grpc.health.v1.Health(address, credentials);
  const classifierClient = new classifier.quantmesh.classifier.v1.ClassifierService(address, credentials);
  const result = {
    health: (await unary(healthClient, 'Check', { service: '' })).response.status,
    service_health: (await unary(healthClient, 'Check', { service: 'quantmesh.classifier.v1.ClassifierService' }))
      .response.status,
    services: await listServices(),
    classify: (await unary(classifierClient, 'Classify', { text: 'What is 17 times 23?' })).response.classification,
    classify_empty: await unary(classifierClient, 'Classify', { text: '' }),
  };
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
}

main().catch((error) => {
  process.stderr.write(String(error.stack || error) + '\n');
  process.exit(1);
});
