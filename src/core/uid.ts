/** DICOM UIDs (PS3.5 9.1): digits and dots, no leading zero in a component, at most 64 characters. */
export const UID_PATTERN = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/;

export const isValidUid = (uid: string): boolean => uid.length > 0 && uid.length <= 64 && UID_PATTERN.test(uid);
