/* The AIGES loader's C ABI for libwrapper.so (see docs: aiges-compat.md section 5).
 * LP64 layouts: ParamList 32 bytes, DataList 48 bytes; enums are int. */
#ifndef GF_AIGES_WRAPPER_H
#define GF_AIGES_WRAPPER_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ParamList {
  char* key;
  char* value;
  unsigned int vlen;
  struct ParamList* next;
} ParamList, *pParamList, *pConfig, *pDescList;

typedef enum { DataText = 0, DataAudio = 1, DataImage = 2, DataVideo = 3, DataPer = 4 } DataType;
typedef enum { DataBegin = 0, DataContinue = 1, DataEnd = 2, DataOnce = 3 } DataStatus;
typedef enum { CTMeterCustom = 0, CTMetricsLog = 1, CTTraceLog = 2 } CtrlType;

typedef struct DataList {
  char* key;
  void* data;
  unsigned int len;
  DataType type;
  DataStatus status;
  pDescList desc;
  struct DataList* next;
} DataList, *pDataList;

typedef int (*wrapperCallback)(const void* usrTag, pDataList respData, int ret);

#define GF_EXPORT __attribute__((visibility("default")))

GF_EXPORT int wrapperSetCtrl(CtrlType type, void* func);
GF_EXPORT int wrapperInit(pConfig cfg);
GF_EXPORT int wrapperFini(void);
GF_EXPORT const char* wrapperError(int errNum);
GF_EXPORT const char* wrapperVersion(void);
GF_EXPORT int wrapperLoadRes(pDataList perData, unsigned int resId);
GF_EXPORT int wrapperUnloadRes(unsigned int resId);
GF_EXPORT const void* wrapperCreate(const char* usrTag, pParamList params, wrapperCallback cb,
                                    unsigned int psrIds[], int psrCnt, int* errNum);
GF_EXPORT int wrapperWrite(const void* handle, pDataList reqData);
GF_EXPORT int wrapperRead(const void* handle, pDataList* respData);
GF_EXPORT int wrapperDestroy(const void* handle);
GF_EXPORT int wrapperExec(const char* usrTag, pParamList params, pDataList reqData,
                          pDataList* respData, unsigned int psrIds[], int psrCnt);
GF_EXPORT int wrapperExecFree(const char* usrTag, pDataList* respData);
GF_EXPORT int wrapperExecAsync(const char* usrTag, pParamList params, pDataList reqData,
                               wrapperCallback callback, int timeout, unsigned int psrIds[],
                               int psrCnt);
GF_EXPORT const char* wrapperDebugInfo(const void* handle);

#ifdef __cplusplus
}
#endif
#endif
