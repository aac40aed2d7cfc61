/**
 * SageMaker's async notification message as its documentation and AWS's samples show it
 * (`../shared/docs/sagemaker-contract.md` §4.4), written independently of inferd's own type so
 * that a test checks inferd's webhooks against SageMaker's shape, not against itself.
 */
import { z } from 'zod';

const isoTime = z.iso.datetime();

export const SageMakerNotificationSchema = z.object({
  awsRegion: z.string().min(1),
  eventTime: isoTime,
  receivedTime: isoTime,
  invocationStatus: z.enum(['Completed', 'Failed']),
  failureReason: z.string().min(1).optional(),
  requestParameters: z.object({
    accept: z.string().optional(),
    contentType: z.string().min(1),
    customAttributes: z.string().optional(),
    endpointName: z.string().min(1),
    inputLocation: z.string().min(1),
  }),
  responseParameters: z.object({
    contentType: z.string().optional(),
    outputLocation: z.string().optional(),
    failureLocation: z.string().optional(),
    responseBody: z.object({ content: z.string(), encoding: z.enum(['TEXT', 'BASE64']) }).optional(),
  }),
  inferenceId: z.string().min(1),
  eventVersion: z.literal('1.0'),
  eventSource: z.literal('aws:sagemaker'),
  eventName: z.literal('InferenceResult'),
});

/** A completed request names its output; a failed one says why. */
export const CompletedNotificationSchema = SageMakerNotificationSchema.extend({
  invocationStatus: z.literal('Completed'),
  responseParameters: SageMakerNotificationSchema.shape.responseParameters.extend({ contentType: z.string().min(1), outputLocation: z.string().min(1) }),
});

export const FailedNotificationSchema = SageMakerNotificationSchema.extend({
  invocationStatus: z.literal('Failed'),
  failureReason: z.string().min(1),
});

export type SageMakerNotification = z.infer<typeof SageMakerNotificationSchema>;
