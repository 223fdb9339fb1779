// The real @uppy/core + @uppy/aws-s3 (tests/e2e/uppy/node_modules), signing through Partwise's
// Companion-compatible endpoints, with the part size the other clients use. Bundled by
// bench_throughput.py with esbuild into its temp dir; window.uploadWithUppy(file, partSize).
import Uppy from '@uppy/core'
import AwsS3 from '@uppy/aws-s3'

window.uploadWithUppy = async (file, partSize) => {
  const uppy = new Uppy({ autoProceed: false })
  uppy.use(AwsS3, {
    companionEndpoint: window.location.origin,
    shouldUseMultipart: true,
    getChunkSize: () => partSize,
  })
  uppy.addFile({ name: file.name, type: file.type || 'application/octet-stream', data: file })
  const result = await uppy.upload()
  return {
    successful: result.successful.length,
    failed: result.failed.map((f) => String(f.error)),
  }
}
window.uppyReady = true
