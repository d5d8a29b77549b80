#ifndef LSP2P_CFFMPEG_SHIM_H
#define LSP2P_CFFMPEG_SHIM_H

#include <libavformat/avformat.h>
#include <libavformat/avio.h>
#include <libavcodec/avcodec.h>
#include <libavcodec/bsf.h>
#include <libavdevice/avdevice.h>
#include <libavutil/avutil.h>
#include <libavutil/audio_fifo.h>
#include <libavutil/channel_layout.h>
#include <libavutil/error.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libavutil/samplefmt.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>

/* Macros Swift cannot import. */
static inline int lsp2p_averror(int e) { return AVERROR(e); }
static inline int lsp2p_averror_eof(void) { return AVERROR_EOF; }
static inline int lsp2p_averror_eagain(void) { return AVERROR(EAGAIN); }
static inline int64_t lsp2p_nopts_value(void) { return AV_NOPTS_VALUE; }
static inline AVRational lsp2p_time_base_q(void) { return AV_TIME_BASE_Q; }

static inline const char *lsp2p_err2str(int errnum, char *buf, size_t size) {
    return av_make_error_string(buf, size, errnum);
}

#endif
