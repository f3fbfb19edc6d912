// node hcl2json.js NPM_PREFIX FILE: print FILE (HCL) as JSON using HashiCorp's
// HCL parser (npm @cdktf/hcl2json); exit 1 with the located diagnostic.
'use strict';
const path = require('path');
const fs = require('fs');
const { parse } = require(path.join(process.argv[2], 'node_modules', '@cdktf', 'hcl2json'));
const file = process.argv[3];
parse(file, fs.readFileSync(file, 'utf8')).then(
	(json) => { process.stdout.write(JSON.stringify(json) + '\n'); },
	(err) => { process.stderr.write(String(err) + '\n'); process.exit(1); });
