// Validates docs/openapi.yaml as OpenAPI 3 (the schema and every $ref).
import SwaggerParser from '@apidevtools/swagger-parser';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const doc = process.argv[2] ||
  path.join(path.dirname(fileURLToPath(import.meta.url)), '../../docs/openapi.yaml');
try {
  const api = await SwaggerParser.validate(doc);
  const n = Object.values(api.paths).reduce(
    (k, p) => k + Object.keys(p).filter((m) => m !== 'servers').length, 0);
  console.log(`${doc}: valid OpenAPI ${api.openapi}, ${n} operations`);
} catch (e) {
  console.error(`${doc}: ${e.message.split("\n").slice(0, 12).join("\n")}`);
  process.exit(1);
}
