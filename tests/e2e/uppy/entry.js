// The real @uppy/core + @uppy/aws-s3 (pinned in package.json), pointed at Partwise exactly as
// an existing Uppy front end would point them at Companion. Bundled by esbuild for the page.
import Uppy from '@uppy/core'
import AwsS3 from '@uppy/aws-s3'

window.uploadWithUppy = async (file) => {
  const uppy = new Uppy({ autoProceed: false })
  uppy.use(AwsS3, {
    companionEndpoint: window.location.origin,
    // Partwise serves multipart only (GET /s3/params answers multipart_required).
    shouldUseMultipart: true,
  })
  const errors = []
  uppy.on('upload-error', (_file, error) => errors.push(String(error)))
  uppy.addFile({ name: file.name, type: file.type, data: file })
  const result = await uppy.upload()
  return {
    successful: result.successful.map((f) => ({
      name: f.name,
      uploadURL: f.uploadURL,
      body: f.response && f.response.body,
    })),
    failed: result.failed.map((f) => ({ name: f.name, error: String(f.error) })),
    errors,
  }
}
window.uppyReady = true
